/**
 * Training checkpoints: everything a run needs to continue as if it had never stopped, in
 * `<output.dir>/checkpoint-<step>/`, written as one atomic folder swap. The folder's files and
 * their names: src/io/runLayout.ts; their checksums: ./checkpointManifest.ts.
 *
 * Floats go through safetensors and JSON unchanged (f32 bits; JSON doubles round-trip), so a
 * resumed run computes exactly what the uninterrupted one would have.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as yamlParse, stringify as toYaml } from 'yaml';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.js';
import { encodeSafetensors, SafetensorsFile, type TensorToWrite } from '../io/safetensors.js';
import type { AdamWMoments, AdamWState } from './adamw.js';
import type { ScheduleState } from './schedule.js';
import type { DataFingerprint } from './data.js';
import { findNonFinite } from './finite.js';
import { checkManifest, manifestFor, type FileData } from './checkpointManifest.js';
import {
  ADAPTER_STATE_FILE,
  CHECKPOINT_FILE_NAMES,
  latestCheckpoint,
  listCheckpoints,
  MANIFEST_FILE,
  OPTIMIZER_FILE,
  RECIPE_FILE,
  TRAINER_STATE_FILE,
} from '../io/runLayout.js';

/** The resolved recipe as checkpoints, the run folder and model cards hold it. */
export const recipeText = (recipe: unknown): string => toYaml(recipe);

const FORMAT_VERSION = 1;

/** Where the data stream stands: the next batch is batch `index` of epoch `epoch`. */
export interface DataCursor {
  epoch: number;
  index: number;
}

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  totalSteps: number;
  /** The next micro-batch to train on. */
  data: DataCursor;
  schedule: ScheduleState;
  /** Generator states: the adapter's dropout stream. */
  rng: { adapter: number[] };
  /** Loss of every completed step, in order (so a resumed run reports the whole history); NaN for a skipped one. */
  losses: number[];
  /** Steps whose update `training.nonfinite: skip_step` skipped (the optimizer did not count them). */
  skippedSteps: number[];
  /** The training data it ran on; absent in checkpoints written before typetune recorded it. */
  dataFingerprint?: DataFingerprint;
  evalLosses: Array<{ step: number; loss: number }>;
  /** Real tokens trained on so far. */
  tokens: number;
  /** Recipe keys changed on purpose at a resume (`--set`), oldest first; absent when none was. */
  changes?: RecipeChange[];
}

/** A recipe key a resume changed: from `step` on, the run trained with `to` instead of `from`. */
export interface RecipeChange {
  step: number;
  /** The key path, e.g. "training.batch_size". */
  key: string;
  from: unknown;
  to: unknown;
}

export interface CheckpointContents {
  state: TrainerState;
  /** Variable values by export name. */
  adapter: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: AdamWState;
  /** The recipe, as saved (a plain object). */
  recipe: unknown;
  /** What loading found that the user should hear (a checkpoint without checksums); set by loadCheckpoint. */
  notes?: string[];
}

/** A problem with a checkpoint folder, naming the file. */
export class CheckpointError extends Error {
  /** Bad input, not a bug: the CLI prints the message alone. */
  readonly userFacing = true;

  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Write a checkpoint folder atomically; an existing one for the same step is replaced whole. */
export async function saveCheckpoint(dir: string, c: CheckpointContents): Promise<void> {
  const adapter: Record<string, TensorToWrite> = {};
  for (const [name, t] of c.adapter) adapter[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  const optimizer: Record<string, TensorToWrite> = {};
  for (const [name, m] of c.optimizer.moments) {
    optimizer[`exp_avg.${name}`] = { dtype: 'F32', shape: m.shape, data: m.m };
    optimizer[`exp_avg_sq.${name}`] = { dtype: 'F32', shape: m.shape, data: m.v };
  }
  const files: Array<[string, FileData]> = [
    [ADAPTER_STATE_FILE, encodeSafetensors(adapter, { format: 'typetune-adapter-state' })],
    [OPTIMIZER_FILE, encodeSafetensors(optimizer, { format: 'typetune-adamw', step: String(c.optimizer.step) })],
    [TRAINER_STATE_FILE, `${JSON.stringify({ version: FORMAT_VERSION, ...c.state }, null, 1)}\n`],
    [RECIPE_FILE, recipeText(c.recipe)],
  ];
  await writeDirAtomic(dir, async (tmp) => {
    for (const [name, data] of files) await writeFileAtomic(path.join(tmp, name), data);
    // Last: the manifest vouches only for files already complete.
    await writeFileAtomic(path.join(tmp, MANIFEST_FILE), manifestFor(files));
  });
}

/**
 * Refuse a checkpoint whose files differ from its checksums, naming the file and the newest
 * other checkpoint of the run that is still intact; a checkpoint without checksums (an older
 * run) loads with a note.
 */
function verifyChecksums(dir: string, use: 'resume' | 'export'): string[] {
  const check = checkManifest(dir, CHECKPOINT_FILE_NAMES);
  if (check.status === 'intact') return [];
  if (check.status === 'unverified') {
    return [`${dir} has no ${MANIFEST_FILE} (written before typetune kept checksums): its files could not be verified`];
  }
  const others = listCheckpoints(path.dirname(dir))
    .filter((c) => path.resolve(c.dir) !== path.resolve(dir))
    .reverse();
  const intact = others.find((c) => checkManifest(c.dir, CHECKPOINT_FILE_NAMES).status !== 'damaged');
  const advice = intact
    ? `${use} from ${intact.dir}`
    : `no other checkpoint of this run is intact${use === 'resume' ? '; start the run afresh' : ''}`;
  throw new CheckpointError(`${path.join(dir, check.file)} ${check.reason}: the file is damaged; ${advice}`);
}

/** Read and check a checkpoint folder (its checksums first); `use` words the advice when it is damaged. */
export function loadCheckpoint(dir: string, use: 'resume' | 'export' = 'resume'): CheckpointContents {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CheckpointError(`${dir}: no such checkpoint folder`);
  for (const f of CHECKPOINT_FILE_NAMES) {
    if (!existsSync(path.join(dir, f))) throw new CheckpointError(`${dir}: not a training checkpoint (missing ${f})`);
  }
  const notes = verifyChecksums(dir, use);
  const stateFile = path.join(dir, TRAINER_STATE_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`${stateFile}: not valid JSON (${(err as Error).message})`);
  }
  if (raw.version !== FORMAT_VERSION)
    throw new CheckpointError(
      `${stateFile}: version ${JSON.stringify(raw.version)} is not ${FORMAT_VERSION}, the version this typetune reads`,
    );
  const state = checkState(raw, stateFile);

  const adapter = new Map<string, { shape: number[]; data: Float32Array }>();
  const af = SafetensorsFile.open(path.join(dir, ADAPTER_STATE_FILE));
  try {
    for (const name of af.keys()) adapter.set(name, af.readFloat32(name));
  } finally {
    af.close();
  }

  const optFile = path.join(dir, OPTIMIZER_FILE);
  const of = SafetensorsFile.open(optFile);
  const moments = new Map<string, AdamWMoments>();
  let step: number;
  try {
    step = Number(of.metadata.step);
    if (!Number.isInteger(step) || step < 0)
      throw new CheckpointError(`${optFile}: metadata 'step' is ${JSON.stringify(of.metadata.step)}, not a step count`);
    for (const key of of.keys()) {
      const m = /^exp_avg\.(.+)$/.exec(key);
      if (!m) {
        if (!/^exp_avg_sq\./.test(key))
          throw new CheckpointError(`${optFile}: unexpected tensor '${key}' (expected exp_avg.<name> / exp_avg_sq.<name>)`);
        continue;
      }
      const name = m[1]!;
      if (!of.has(`exp_avg_sq.${name}`)) throw new CheckpointError(`${optFile}: 'exp_avg.${name}' has no matching 'exp_avg_sq.${name}'`);
      const a = of.readFloat32(key);
      const b = of.readFloat32(`exp_avg_sq.${name}`);
      moments.set(name, { shape: a.shape, m: a.data, v: b.data });
    }
  } finally {
    of.close();
  }

  const nonFinite = findNonFinite([
    ...[...adapter].map(([name, t]): [string, Float32Array] => [`${ADAPTER_STATE_FILE}: '${name}'`, t.data]),
    ...[...moments].flatMap(
      ([name, m]): Array<[string, Float32Array]> => [
        [`${OPTIMIZER_FILE}: 'exp_avg.${name}'`, m.m],
        [`${OPTIMIZER_FILE}: 'exp_avg_sq.${name}'`, m.v],
      ],
    ),
  ]);
  if (nonFinite) {
    throw new CheckpointError(
      `${dir}: ${nonFinite.name} holds ${nonFinite.value} (element ${nonFinite.index}); a diverged run's checkpoint cannot be resumed or exported: use an earlier checkpoint`,
    );
  }

  let recipe: unknown;
  try {
    recipe = parseYamlFile(path.join(dir, RECIPE_FILE));
  } catch (err) {
    throw new CheckpointError(`${path.join(dir, RECIPE_FILE)}: ${(err as Error).message}`);
  }
  return { state, adapter, optimizer: { step, moments }, recipe, notes };
}

function parseYamlFile(file: string): unknown {
  return yamlParse(readFileSync(file, 'utf8'));
}

function checkState(raw: Record<string, unknown>, file: string): TrainerState {
  const bad = (key: string, want: string): never => {
    throw new CheckpointError(`${file}: '${key}' is ${JSON.stringify(raw[key])}; expected ${want}`);
  };
  const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
  const data = raw.data as DataCursor | undefined;
  if (!isCount(raw.step)) bad('step', 'a non-negative integer');
  if (!isCount(raw.totalSteps)) bad('totalSteps', 'a non-negative integer');
  if (!data || !isCount(data.epoch) || !isCount(data.index)) bad('data', '{epoch, index} (non-negative integers)');
  const sched = raw.schedule as ScheduleState | undefined;
  if (
    !sched ||
    typeof sched.kind !== 'string' ||
    typeof sched.baseLr !== 'number' ||
    !isCount(sched.totalSteps) ||
    !isCount(sched.warmupSteps)
  ) {
    bad('schedule', '{kind, baseLr, totalSteps, warmupSteps, numCycles}');
  }
  const rng = raw.rng as { adapter?: unknown } | undefined;
  if (!rng || !Array.isArray(rng.adapter)) bad('rng', '{adapter: [numbers]}');
  // JSON has no NaN: a skipped step's loss is written as null.
  if (!Array.isArray(raw.losses) || !raw.losses.every((x) => typeof x === 'number' || x === null)) bad('losses', 'a list of numbers');
  const skipped = raw.skippedSteps ?? [];
  if (!Array.isArray(skipped) || !skipped.every(isCount)) bad('skippedSteps', 'a list of step numbers');
  const fp = raw.dataFingerprint as DataFingerprint | undefined;
  if (fp !== undefined && (!isCount(fp?.examples) || !isCount(fp.tokens) || typeof fp.sha256 !== 'string'))
    bad('dataFingerprint', '{examples, tokens, sha256}');
  if ((raw.losses as number[]).length !== raw.step) bad('losses', `one loss per completed step (${String(raw.step)})`);
  if (!Array.isArray(raw.evalLosses)) bad('evalLosses', 'a list of {step, loss}');
  if (typeof raw.tokens !== 'number') bad('tokens', 'a number');
  const changes = raw.changes;
  if (
    changes !== undefined &&
    !(Array.isArray(changes) && changes.every((c) => isCount(c?.step) && typeof c.key === 'string' && 'from' in c && 'to' in c))
  ) {
    bad('changes', 'a list of {step, key, from, to}');
  }
  // JSON has no NaN: the adapter RNG's "no spare normal" is written as null.
  const adapterRng = (rng!.adapter as unknown[]).map((v) => (v === null ? NaN : Number(v)));
  return {
    step: raw.step as number,
    totalSteps: raw.totalSteps as number,
    data: { epoch: data!.epoch, index: data!.index },
    schedule: sched!,
    rng: { adapter: adapterRng },
    losses: (raw.losses as Array<number | null>).map((x) => x ?? NaN),
    skippedSteps: skipped as number[],
    ...(fp ? { dataFingerprint: { examples: fp.examples, tokens: fp.tokens, sha256: fp.sha256 } } : {}),
    evalLosses: raw.evalLosses as Array<{ step: number; loss: number }>,
    tokens: raw.tokens as number,
    ...(changes !== undefined ? { changes: changes as RecipeChange[] } : {}),
  };
}

/**
 * The folder `--resume [DIR]` means: DIR itself when it is a checkpoint, the newest checkpoint
 * in DIR when it is a run folder, the newest in `runDir` when no DIR is given.
 */
export function resolveResume(arg: string | true, runDir: string): string {
  const where = arg === true ? runDir : path.resolve(arg);
  if (existsSync(path.join(where, TRAINER_STATE_FILE))) return where;
  const latest = latestCheckpoint(where);
  if (!latest) {
    throw new CheckpointError(
      `${where}: no checkpoint to resume from (expected a checkpoint-<step> folder holding ${TRAINER_STATE_FILE}${arg === true ? ", in the recipe's output.dir" : ''})`,
    );
  }
  return latest;
}
