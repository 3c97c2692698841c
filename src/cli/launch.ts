/**
 * Many GPUs from the command line: `train --gpus N …` (and `typetune launch --gpus N -- …`)
 * starts one `train` process per GPU through the launcher (src/distributed/launcher.ts); each of those
 * processes, seeing RANK/WORLD_SIZE, joins the job (src/distributed/join.ts) before building its Trainer.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { launch, stripLaunchFlags } from '../distributed/launcher.js';
import { loadRecipe } from '../recipe/load.js';

/** The launcher's own options, as both commands declare them. */
export const LAUNCH_OPTIONS = {
  gpus: {
    type: 'number',
    describe: "start one process per GPU on this node (data parallel; how they share: the recipe's distributed.strategy)",
  },
  nnodes: { type: 'number', default: 1, describe: 'machines in the job (with --gpus)' },
  'node-rank': { type: 'number', default: 0, describe: "this machine's index, 0…nnodes−1 (with --gpus)" },
  'master-addr': { type: 'string', default: '127.0.0.1', describe: 'address of node 0, where rank 0 listens (with --gpus)' },
  'master-port': { type: 'number', default: 29500, describe: 'port rank 0 listens on (with --gpus)' },
} as const;

export interface LaunchArgs {
  gpus?: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
}

/** The launch command line, for messages that say how it is written. */
export const LAUNCH_USAGE =
  'typetune launch --gpus N [--nnodes M --node-rank I --master-addr HOST --master-port PORT] -- --recipe FILE [--set key=value …]';

/** A launch command line that cannot be run as written: the CLI prints it as one line, exit 2. */
export class LaunchUsageError extends Error {
  readonly userFacing = true;

  constructor(problem: string) {
    super(`${problem}; usage: ${LAUNCH_USAGE}`);
    this.name = 'LaunchUsageError';
  }
}

/** How long the other ranks get to save and leave after one died, before they are killed. */
const GRACE_MS = 20_000;

/** --recipe and every --set of train's arguments (to know the backend before starting ranks). */
function recipeArgs(args: readonly string[]): { file: string; sets: string[] } {
  let file: string | null = null;
  const sets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--(recipe|set)(?:=(.*))?$/.exec(args[i]!);
    if (!m) continue;
    const value = m[2] ?? args[++i];
    if (value === undefined) continue;
    if (m[1] === 'recipe') file = value;
    else sets.push(value);
  }
  if (!file) throw new LaunchUsageError("no recipe to train: give train's --recipe FILE");
  return { file, sets };
}

/** `train`'s own entry file (train.js when built, train.ts when run from the sources). */
function trainScript(): string {
  for (const ext of ['.js', '.ts']) {
    const file = fileURLToPath(new URL(`./train${ext}`, import.meta.url));
    if (existsSync(file)) return file;
  }
  throw new Error('cannot find the train entry point beside src/cli/launch');
}

/**
 * Run `train trainArgs` as a job of `gpus` processes on this node; returns the job's exit code.
 * CPU ranks (model.backend cpu) get no GPU each.
 */
export async function launchTrain(a: LaunchArgs & { gpus: number }, trainArgs: string[]): Promise<number> {
  const recipe = recipeArgs(trainArgs);
  const backend = loadRecipe(recipe.file, recipe.sets).model.backend;
  const { code } = await launch({
    procsPerNode: a.gpus,
    nnodes: a.nnodes,
    nodeRank: a.nodeRank,
    masterAddr: a.masterAddr,
    masterPort: a.masterPort,
    command: [process.execPath, ...process.execArgv, trainScript(), ...stripLaunchFlags(trainArgs)],
    assignGpus: backend !== 'cpu',
    graceMs: GRACE_MS,
  });
  return code;
}
