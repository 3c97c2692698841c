/**
 * `train --gpus N` / `typetune launch`: one process per GPU on this node, torchrun-style. Each
 * rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT
 * and its own GPU (CUDA_VISIBLE_DEVICES), and finds the others through the rendezvous
 * (./rendezvous.ts). The launcher forwards Ctrl-C/SIGTERM to every rank (they finish the step,
 * save and exit), and when a rank dies — an error, an OOM, kill -9 — it says which and how, asks
 * the others to stop, and kills whatever is left after a grace period: a job never hangs on a
 * dead peer (NCCL collectives wait forever on one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { CollectiveError } from './communicator.js';

export interface LaunchOptions {
  /** Processes (GPUs) on this node. */
  procsPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** What each rank runs: [executable, ...arguments]. */
  command: string[];
  /** Give local rank i the i-th visible GPU through CUDA_VISIBLE_DEVICES (off for CPU ranks). */
  assignGpus: boolean;
  /** After a rank died, how long the others get to leave before they are killed. */
  graceMs: number;
  /** Where the launcher's own lines go (default stderr). */
  log?: (line: string) => void;
}

export interface LaunchResult {
  /** The job's exit code: the first failed rank's (128 + signal number for a signal), else 0. */
  code: number;
  /** The first rank that failed, if any. */
  failed: { rank: number; code: number | null; signal: NodeJS.Signals | null } | null;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGABRT: 6 };

export function checkLaunchOptions(o: LaunchOptions): void {
  const int = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (!int(o.procsPerNode, 1)) throw new CollectiveError(`--gpus ${o.procsPerNode}: expected a positive integer`);
  if (!int(o.nnodes, 1)) throw new CollectiveError(`--nnodes ${o.nnodes}: expected a positive integer`);
  if (!int(o.nodeRank, 0) || o.nodeRank >= o.nnodes)
    throw new CollectiveError(`--node-rank ${o.nodeRank}: expected 0…${o.nnodes - 1} (--nnodes ${o.nnodes})`);
  if (!int(o.masterPort, 1) || o.masterPort > 65535) throw new CollectiveError(`--master-port ${o.masterPort}: not a TCP port`);
}

/** The device index local rank `i` gets: the i-th of the launcher's CUDA_VISIBLE_DEVICES, or i. */
function visibleDevice(i: number, procs: number): string {
  const list = process.env.CUDA_VISIBLE_DEVICES?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!list) return String(i);
  if (list.length < procs)
    throw new CollectiveError(`--gpus ${procs}: CUDA_VISIBLE_DEVICES lists only ${list.length} device(s) (${list.join(',')})`);
  return list[i]!;
}

export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  checkLaunchOptions(o);
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const worldSize = o.procsPerNode * o.nnodes;
  const children: Array<{ rank: number; child: ChildProcess; done: boolean }> = [];
  let failed: LaunchResult['failed'] = null;
  let killTimer: NodeJS.Timeout | null = null;

  const stopAll = (signal: NodeJS.Signals): void => {
    for (const c of children) if (!c.done) c.child.kill(signal);
  };
  const forward = (signal: NodeJS.Signals) => () => stopAll(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  try {
    const exits = Array.from({ length: o.procsPerNode }, (_, local) => {
      const rank = o.nodeRank * o.procsPerNode + local;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(o.procsPerNode),
        NODE_RANK: String(o.nodeRank),
        MASTER_ADDR: o.masterAddr,
        MASTER_PORT: String(o.masterPort),
        ...(o.assignGpus ? { CUDA_VISIBLE_DEVICES: visibleDevice(local, o.procsPerNode) } : {}),
      };
      // Rank 0 talks to the terminal; the others' lines are prefixed with their rank.
      const child = spawn(o.command[0]!, o.command.slice(1), { env, stdio: rank === 0 ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
      for (const stream of [child.stdout, child.stderr]) {
        if (stream) readline.createInterface({ input: stream }).on('line', (line) => log(`[rank ${rank}] ${line}`));
      }
      const entry = { rank, child, done: false };
      children.push(entry);
      return new Promise<void>((resolve) => {
        child.on('error', (err) => {
          entry.done = true;
          failed ??= { rank, code: null, signal: null };
          log(`error: rank ${rank} could not start: ${err.message}`);
          stopAll('SIGTERM');
          resolve();
        });
        child.on('exit', (code, signal) => {
          entry.done = true;
          if ((code !== 0 || signal) && !failed) {
            failed = { rank, code, signal };
            const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            const others = children.filter((c) => !c.done).map((c) => c.rank);
            log(
              `error: rank ${rank} (pid ${child.pid}) ${how}${others.length ? `; stopping rank${others.length > 1 ? 's' : ''} ${others.join(', ')}` : ''}`,
            );
            stopAll('SIGTERM');
            killTimer = setTimeout(() => stopAll('SIGKILL'), o.graceMs);
          }
          resolve();
        });
      });
    });
    await Promise.all(exits);
  } finally {
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  const f = failed as LaunchResult['failed'];
  const code = !f ? 0 : f.signal ? 128 + (SIGNAL_NUMBERS[f.signal] ?? 1) : (f.code ?? 1);
  return { code, failed: f };
}

/** The launcher's own flags, removed from the arguments each rank gets. */
export const LAUNCH_FLAGS = ['gpus', 'nnodes', 'node-rank', 'master-addr', 'master-port'] as const;

export function stripLaunchFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--([\w-]+)(=.*)?$/.exec(a);
    const name = m?.[1]?.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
    if (m && name && (LAUNCH_FLAGS as readonly string[]).includes(name)) {
      if (!m[2]) i += 1; // its value is the next argument
      continue;
    }
    out.push(a);
  }
  return out;
}
