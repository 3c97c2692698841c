/**
 * Resuming: put a checkpoint's weights, moments and generator state back after checking that it
 * belongs to this recipe — same adapter, same data, a schedule that agrees on every step already
 * taken. Extending a finished run (`--resume --set training.max_steps=N`, N larger) is allowed
 * where the schedule does not depend on the total: `constant` (after the same warmup). Linear and
 * cosine decay towards 0 *at the last step*, so a new total would change the learning rate of
 * every step already taken; such a run is refused with a message saying so.
 *
 * Any other key that changes how the steps to come train (the adapter, the batch, the optimizer,
 * the data order, the seed …) must match the checkpoint's recipe, unless the user changes it on
 * purpose with `--set`: then the run continues, warns, and records the change in
 * trainer_state.json (`changes`), since recipe.yaml from then on shows only the new value.
 */
import path from 'node:path';
import { tf } from '../backend/tf.js';
import type { AdamWState } from './adamw.js';
import { isDeepStrictEqual } from 'node:util';
import { CheckpointError, type CheckpointContents, type RecipeChange, type TrainerState } from './checkpoint.js';
import { RECIPE_FILE, TRAINER_STATE_FILE } from '../io/runLayout.js';
import type { DataFingerprint } from './data.js';
import type { ScheduleState } from './schedule.js';
import type { AnyAdapter } from '../adapters/index.js';
import type { Recipe } from '../recipe/types.js';

export interface ResumeTarget {
  adapter: AnyAdapter;
  /** Takes the checkpoint's optimizer state (an AdamW, or a data-parallel runner's shard of it). */
  optimizer: { setState(state: AdamWState): void };
  /** This recipe's schedule. */
  schedule: ScheduleState;
  /** This recipe's training data. */
  data: { fingerprint: DataFingerprint; path: string };
  /** This recipe, and the key paths `--set` gave it (the changes the user asked for). */
  recipe: { now: Recipe; overridden: readonly string[] };
}

/** The restored trainer state, and notes on what differs from the checkpoint (an extension). */
export function restoreCheckpoint(c: CheckpointContents, dir: string, into: ResumeTarget): { state: TrainerState; notes: string[] } {
  const changes = checkRecipe(c.recipe, into.recipe, c.state.step, dir);
  const note = checkSchedule(c.state, into.schedule, dir);
  checkData(c.state.dataFingerprint, into.data, dir);
  const { adapter, optimizer } = into;
  const names = [...adapter.variables.keys()];
  const missing = names.find((n) => !c.adapter.has(n));
  const extra = [...c.adapter.keys()].find((n) => !adapter.variables.has(n));
  if (missing || extra) {
    throw new CheckpointError(
      `${dir}: its adapter does not match this recipe's (${missing ? `no '${missing}' in the checkpoint` : `unexpected '${extra}'`})`,
    );
  }
  for (const [name, v] of adapter.variables) {
    const saved = c.adapter.get(name)!;
    if (saved.shape.length !== v.shape.length || saved.shape.some((d, i) => d !== v.shape[i])) {
      throw new CheckpointError(
        `${dir}: '${name}' is [${saved.shape.join(', ')}] in the checkpoint but [${v.shape.join(', ')}] in this adapter`,
      );
    }
  }
  // Skipped steps did not reach the optimizer, so its count trails the trainer's by their number.
  const updates = c.state.step - c.state.skippedSteps.length;
  if (c.optimizer.step !== updates)
    throw new CheckpointError(`${dir}: optimizer step ${c.optimizer.step} differs from the trainer's ${updates} updates`);
  // assign() keeps a reference to the tensor's data: the temporary must go, or the variable shares
  // its buffer and the device's in-place AdamW (rightly) refuses to update it.
  for (const [name, v] of adapter.variables) tf.tidy(() => v.assign(tf.tensor(c.adapter.get(name)!.data, v.shape, 'float32')));
  optimizer.setState(c.optimizer);
  adapter.setRngState(c.state.rng.adapter);
  const state = structuredClone(c.state);
  state.totalSteps = into.schedule.totalSteps;
  state.schedule = into.schedule;
  const notes = [...(c.notes ?? []), ...(note ? [changes.length > 0 ? note : `${note}; nothing else changes`] : [])];
  if (changes.length > 0) {
    state.changes = [...(state.changes ?? []), ...changes];
    notes.push(
      `resuming at step ${c.state.step} with ${describeChanges(changes)} (--set): steps ${c.state.step + 1} on train with ${changes.length > 1 ? 'these values' : 'this value'}; the change is recorded in ${TRAINER_STATE_FILE} (changes)`,
    );
  }
  return { state, notes };
}

/**
 * Recipe keys that change how the steps to come train. The schedule's keys (learning_rate,
 * lr_scheduler, warmup_*, epochs, max_steps) are checkSchedule's, which knows which changes an
 * extension may make; output, logging, checkpointing and evaluation keys change no step.
 */
const TRAJECTORY_KEYS: Record<string, readonly string[]> = {
  model: ['precision', 'quantization'],
  data: ['format', 'columns', 'max_length', 'truncate', 'packing', 'shuffle', 'seed'],
  training: ['batch_size', 'gradient_accumulation_steps', 'weight_decay', 'adam_betas', 'adam_eps', 'max_grad_norm', 'seed'],
};

const own = (o: unknown, key: string): unknown =>
  typeof o === 'object' && o !== null && Object.hasOwn(o, key) ? (o as Record<string, unknown>)[key] : undefined;

/** The trajectory keys whose value differs between the checkpoint's recipe and this one, in recipe order. */
function recipeDifferences(saved: unknown, now: Recipe, step: number): RecipeChange[] {
  const out: RecipeChange[] = [];
  const compare = (section: string, key: string): void => {
    const was = own(own(saved, section), key);
    const is = own(now[section as keyof Recipe], key);
    // A key the checkpoint's recipe lacks (written by an older typetune, or the other adapter family's) cannot be compared.
    if (was === undefined || is === undefined) return;
    if (!isDeepStrictEqual(was, is)) out.push({ step, key: `${section}.${key}`, from: was, to: is });
  };
  for (const key of TRAJECTORY_KEYS.model!) compare('model', key);
  // The adapter is what is trained: every key of it counts.
  const adapterKeys = new Set(['type', ...Object.keys(now.adapter)]);
  for (const key of adapterKeys) compare('adapter', key);
  for (const section of ['data', 'training']) for (const key of TRAJECTORY_KEYS[section]!) compare(section, key);
  return out;
}

/** Whether a `--set` of `overridden` changed `key` (itself, a section above it, or a part of it). */
const setBy = (key: string, overridden: readonly string[]): boolean =>
  overridden.some((p) => p === key || key.startsWith(`${p}.`) || p.startsWith(`${key}.`));

/**
 * Whether the user asked for this change: a `--set` of the key, or of the key it follows by
 * default (data.seed is training.seed's unless given, so `--set training.seed=…` moves both).
 */
function asked(change: RecipeChange, now: Recipe, overridden: readonly string[]): boolean {
  if (setBy(change.key, overridden)) return true;
  return change.key === 'data.seed' && setBy('training.seed', overridden) && now.data.seed === now.training.seed;
}

const shown = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

function describeChanges(changes: readonly RecipeChange[]): string {
  return changes.map((c) => `${c.key} ${shown(c.from)} → ${shown(c.to)}`).join(', ');
}

/** The changes `--set` asked for; a change that came from an edited recipe file is refused in one line. */
function checkRecipe(saved: unknown, now: ResumeTarget['recipe'], step: number, dir: string): RecipeChange[] {
  const changes = recipeDifferences(saved, now.now, step);
  const unasked = changes.filter((c) => !asked(c, now.now, now.overridden));
  if (unasked.length > 0) {
    const sets = unasked.map((c) => `--set ${c.key}=${shown(c.to)}`).join(' ');
    throw new CheckpointError(
      `${dir}: this recipe changes how the run trains since its checkpoint: ${describeChanges(unasked)}; resume with the recipe the run started with (${path.join(dir, RECIPE_FILE)}), or change it deliberately, recorded in the run: ${sets}`,
    );
  }
  return changes;
}

/** The same schedule, or a constant one extended past its old end; else a one-line refusal. */
function checkSchedule(saved: TrainerState, now: ScheduleState, dir: string): string | null {
  const was = saved.schedule;
  const describe = (s: ScheduleState): string => `${s.kind}, lr ${s.baseLr}, ${s.totalSteps} steps, ${s.warmupSteps} warmup`;
  const recipeHint = `resume with the recipe the run started with (${path.join(dir, RECIPE_FILE)})`;
  if (was.kind !== now.kind || was.baseLr !== now.baseLr || was.warmupSteps !== now.warmupSteps || was.numCycles !== now.numCycles) {
    throw new CheckpointError(`${dir}: its schedule (${describe(was)}) differs from this recipe's (${describe(now)}); ${recipeHint}`);
  }
  if (was.totalSteps === now.totalSteps) return null;
  if (now.totalSteps <= saved.step) {
    throw new CheckpointError(
      `${dir}: the run is at step ${saved.step} already, and this recipe trains ${now.totalSteps} steps in all; give training.max_steps larger than ${saved.step} to extend it`,
    );
  }
  if (now.kind !== 'constant') {
    throw new CheckpointError(
      `${dir}: a ${now.kind} schedule decays the learning rate to 0 at its last step (${was.totalSteps}), so ${now.totalSteps} steps would change the rate of every step already taken; ${recipeHint}, or train a new run (lr_scheduler: constant runs can be extended)`,
    );
  }
  return `extending the run from ${was.totalSteps} to ${now.totalSteps} steps: steps ${saved.step + 1}–${now.totalSteps} train at the constant learning rate ${now.baseLr}, the data continues where it stopped`;
}

function checkData(saved: DataFingerprint | undefined, now: ResumeTarget['data'], dir: string): void {
  if (
    !saved ||
    (saved.examples === now.fingerprint.examples && saved.tokens === now.fingerprint.tokens && saved.sha256 === now.fingerprint.sha256)
  )
    return;
  const describe = (f: DataFingerprint): string => `${f.examples} examples, ${f.tokens} tokens, sha256 ${f.sha256.slice(0, 12)}`;
  throw new CheckpointError(
    `${dir}: the data changed since this checkpoint (it trained on ${describe(saved)}; ${now.path} now gives ${describe(now.fingerprint)}); resume with the data it was trained on, or start a new run`,
  );
}
