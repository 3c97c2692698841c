/**
 * The `train` CLI as a child process, SIGKILLed once it reports a given step: what the kill -9
 * and --resume tests (test/train/killResume.test.ts, test/gpu/killResume.test.ts) share.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ADAPTER_STATE_FILE, TRAINER_STATE_FILE } from '../src/io/runLayout.js';
import { repoRoot } from './helpers.js';

export interface KilledRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  lastStep: number;
  stderr: string;
}

/** Call `onStep` with each step `train --json` reports on the child's stdout. */
export function onSteps(child: ChildProcess, onStep: (step: number) => void): void {
  let buffered = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const l of lines) {
      const e = JSON.parse(l) as { event: string; step?: number };
      if (e.event === 'step') onStep(e.step!);
    }
  });
}

/** Run `command` (node arguments before train's own) with `--json`; SIGKILL it once it reports step `killAt` (never, when null). */
export function trainKilledAt(command: string[], args: string[], killAt: number | null): Promise<KilledRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...command, ...args, '--json'], { cwd: repoRoot });
    let stderr = '';
    let lastStep = 0;
    onSteps(child, (step) => {
      lastStep = step;
      if (killAt !== null && lastStep >= killAt) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, lastStep, stderr }));
  });
}

/** The finished run's losses (from checkpoint-`steps`) and its PEFT export's bytes. */
export function finalState(dir: string, steps: number): { losses: number[]; adapter: Buffer } {
  const checkpoint = path.join(dir, 'run', `checkpoint-${steps}`);
  return {
    losses: (JSON.parse(readFileSync(path.join(checkpoint, TRAINER_STATE_FILE), 'utf8')) as { losses: number[] }).losses,
    // The checkpoint's adapter state: every adapter kind has one (ReFT exports no PEFT folder).
    adapter: readFileSync(path.join(checkpoint, ADAPTER_STATE_FILE)),
  };
}
