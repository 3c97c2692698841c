/**
 * `train --gpus 2` with the cpu backend, for real: two processes, a TCP rendezvous, collectives
 * over TCP. The job trains what one process trains; a rank killed with kill -9 ends the job
 * within 60 s with an error naming it, and `--resume` continues from the last checkpoint.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { useBackend } from '../../src/backend/select.js';
import { launch, stripLaunchFlags } from '../../src/distributed/launcher.js';
import { maxRelError, repoRoot } from '../helpers.js';
import { distRecipe, freePort, readTensors, tmp, trainRanks } from './ranks.js';

beforeAll(async () => {
  await useBackend('cpu');
});

interface Job {
  code: Promise<number | null>;
  stderr: () => string;
  /** Resolves with rank 0's step events as they arrive (--json). */
  steps: number[];
  onStep(cb: (step: number) => void): void;
  pid: number;
}

/** `train --recipe FILE --gpus 2 --json …` from the sources (tsx), in the background. */
function trainJob(recipeFile: string, port: number, extra: string[] = []): Job {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(repoRoot, 'src/cli/train.ts'),
      '--recipe',
      recipeFile,
      '--gpus',
      '2',
      '--master-port',
      String(port),
      '--json',
      ...extra,
    ],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  let out = '';
  const steps: number[] = [];
  const listeners: Array<(s: number) => void> = [];
  child.stderr.on('data', (d) => {
    err += String(d);
  });
  child.stdout.on('data', (d) => {
    out += String(d);
    const lines = out.split('\n');
    out = lines.pop()!;
    for (const l of lines) {
      const e = JSON.parse(l) as { event: string; step?: number; loss?: number };
      if (e.event === 'step') {
        steps.push(e.loss!);
        for (const cb of listeners) cb(e.step!);
      }
    }
  });
  return {
    code: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
    stderr: () => err,
    steps,
    onStep: (cb) => listeners.push(cb),
    pid: child.pid!,
  };
}

/** The launcher's child whose environment says RANK=rank (Linux /proc). */
function rankPid(launcher: number, rank: number): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid !== launcher) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`)) return Number(entry);
    } catch {
      /* a process that ended meanwhile */
    }
  }
  throw new Error(`no rank ${rank} under pid ${launcher}`);
}

function writeRecipe(dir: string, training: Record<string, unknown>): string {
  const file = path.join(dir, 'recipe.yaml');
  writeFileSync(file, stringify(distRecipe(path.join(dir, 'run'), training, { distributed: { strategy: 'zero2', timeout_s: 30 } })));
  return file;
}

describe('train --gpus 2 on the cpu backend', () => {
  it('two processes train what one process trains, and each rank reports its memory', async () => {
    const dir = tmp('launch');
    const training = { max_steps: 3, gradient_accumulation_steps: 2, save_every_steps: null };
    const job = trainJob(writeRecipe(dir, training), await freePort());
    expect(await job.code, job.stderr()).toBe(0);
    expect(job.stderr()).toMatch(/\[rank 1\] rank 1 of 2: peak memory/);
    expect(job.stderr()).toMatch(/rank 0 of 2: peak memory/);
    const refDir = tmp('launch-ref');
    const [ref] = await trainRanks(0, distRecipe(refDir, training));
    job.steps.forEach((l, i) => expect(Math.abs(l - ref!.losses[i]!)).toBeLessThan(1e-5));
    expect(job.steps).toHaveLength(3);
    const ours = readTensors(path.join(dir, 'run/peft/adapter_model.safetensors'));
    for (const [k, v] of readTensors(path.join(refDir, 'peft/adapter_model.safetensors')))
      expect(maxRelError(ours.get(k)!, v), k).toBeLessThan(1e-5);
  });

  it('kill -9 of rank 1 ends the job within 60 s naming the rank; --resume continues from the last checkpoint', async () => {
    const dir = tmp('kill');
    const recipe = writeRecipe(dir, { max_steps: 6, gradient_accumulation_steps: 2, save_every_steps: 1 });
    const job = trainJob(recipe, await freePort());
    let killedAt = 0;
    // Step 3's event comes after checkpoint-2 was written (step 2's event comes before its save).
    job.onStep((step) => {
      if (step === 3 && !killedAt) {
        process.kill(rankPid(job.pid, 1), 'SIGKILL');
        killedAt = Date.now();
      }
    });
    const code = await job.code;
    expect(killedAt, job.stderr()).toBeGreaterThan(0);
    expect(Date.now() - killedAt).toBeLessThan(60_000);
    expect(code).toBe(137);
    expect(job.stderr()).toMatch(/error: rank 1 \(pid \d+\) was killed by SIGKILL; stopping rank 0/);
    expect(existsSync(path.join(dir, 'run/checkpoint-2'))).toBe(true);

    const resumed = trainJob(recipe, await freePort(), ['--resume']);
    expect(await resumed.code, resumed.stderr()).toBe(0);
    expect(resumed.steps.length).toBeGreaterThanOrEqual(3);
    expect(existsSync(path.join(dir, 'run/checkpoint-6'))).toBe(true);
    expect(existsSync(path.join(dir, 'run/peft/adapter_model.safetensors'))).toBe(true);
  });

  it('the launcher strips its own flags from what each rank gets', () => {
    expect(
      stripLaunchFlags([
        '--recipe',
        'r.yaml',
        '--gpus',
        '2',
        '--master-port=9',
        '--nnodes',
        '1',
        '--set',
        'a=b',
        '--node-rank=0',
        '--master-addr',
        'h',
      ]),
    ).toEqual(['--recipe', 'r.yaml', '--set', 'a=b']);
  });
});

describe('launch', () => {
  const node = (script: string) => [process.execPath, '-e', script];
  const base = { procsPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 29999, assignGpus: true, graceMs: 500 };

  it('gives each rank torchrun’s variables and its own GPU', async () => {
    const dir = tmp('env');
    const lines: string[] = [];
    const script = `require('fs').writeFileSync(require('path').join(${JSON.stringify(dir)}, 'rank' + process.env.RANK), JSON.stringify(process.env))`;
    const saved = process.env.CUDA_VISIBLE_DEVICES;
    process.env.CUDA_VISIBLE_DEVICES = '4,6';
    try {
      expect(await launch({ ...base, command: node(script), log: (l) => lines.push(l) })).toEqual({ code: 0, failed: null });
    } finally {
      if (saved === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
      else process.env.CUDA_VISIBLE_DEVICES = saved;
    }
    for (const [rank, local, gpu] of [
      [2, 0, '4'],
      [3, 1, '6'],
    ] as const) {
      const env = JSON.parse(readFileSync(path.join(dir, `rank${rank}`), 'utf8')) as Record<string, string>;
      expect(env).toMatchObject({
        RANK: String(rank),
        WORLD_SIZE: '4',
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: '2',
        NODE_RANK: '1',
        MASTER_ADDR: '10.0.0.1',
        MASTER_PORT: '29999',
        CUDA_VISIBLE_DEVICES: gpu,
      });
    }
  });

  it('a rank that fails stops the others, and one that ignores SIGTERM is killed after the grace period', async () => {
    const lines: string[] = [];
    const script = "if (process.env.LOCAL_RANK === '1') process.exit(3); process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)";
    const started = Date.now();
    const result = await launch({ ...base, nnodes: 1, nodeRank: 0, assignGpus: false, command: node(script), log: (l) => lines.push(l) });
    expect(result).toEqual({ code: 3, failed: { rank: 1, code: 3, signal: null } });
    expect(lines).toEqual([expect.stringMatching(/^error: rank 1 \(pid \d+\) exited with code 3; stopping rank 0$/)]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('%s to the launcher reaches every rank, which stops on its own terms', async (signal) => {
    const dir = tmp('signal');
    const file = (what: string) => JSON.stringify(path.join(dir, what));
    // Each rank says it is listening, then on the signal writes which one it got and exits 0 (a rank's clean stop).
    const script =
      `const fs = require('fs'); process.on(${JSON.stringify(signal)}, (s) => { fs.writeFileSync(${file('got')} + process.env.RANK, s); process.exit(0); });` +
      ` fs.writeFileSync(${file('ready')} + process.env.RANK, ''); setInterval(() => {}, 1000)`;
    const listeners = process.listenerCount(signal);
    const job = launch({ ...base, nnodes: 1, nodeRank: 0, assignGpus: false, command: node(script) });
    const deadline = Date.now() + 20_000;
    while (![0, 1].every((r) => existsSync(path.join(dir, `ready${r}`)))) {
      if (Date.now() > deadline) throw new Error('the ranks never became ready');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    process.emit(signal, signal); // as the terminal's Ctrl-C or a scheduler's SIGTERM would reach the launcher
    expect(await job).toEqual({ code: 0, failed: null });
    for (const r of [0, 1]) expect(readFileSync(path.join(dir, `got${r}`), 'utf8')).toBe(signal);
    // The launcher's handlers leave with the job: the process's own signal handling is as it was.
    expect(process.listenerCount(signal)).toBe(listeners);
  });

  it('refuses impossible options naming the flag', async () => {
    await expect(launch({ ...base, nodeRank: 2, command: node('') })).rejects.toThrow(/--node-rank 2: expected 0…1 \(--nnodes 2\)/);
    await expect(launch({ ...base, procsPerNode: 0, command: node('') })).rejects.toThrow(/--gpus 0: expected a positive integer/);
  });
});
