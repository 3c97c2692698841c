/**
 * Resuming: put a checkpoint's weights, moments and generator state back after checking that it
 * belongs to this recipe — same adapter, same data, a schedule that agrees on every step already
 * taken. Extending a finished run (`--resume --set training.max_steps=N`, N larger) is allowed
 * where the schedule does not depend on the total: `constant` (after the same warmup). Linear and
 * cosine decay towards 0 *at the last step*, so a new total would change the learning rate of
 * every step already taken; such a run is refused with a message saying so.
 */
import path from 'node:path';
import { tf } from '../backend/tf.js';
import type { AdamWState } from './adamw.js';
import { CheckpointError, RECIPE_FILE, type CheckpointContents, type TrainerState } from './checkpoint.js';
import type { DataFingerprint } from './data.js';
import type { ScheduleState } from './schedule.js';
import type { AnyAdapter } from '../adapters/index.js';

export interface ResumeTarget {
  adapter: AnyAdapter;
  /** Takes the checkpoint's optimizer state (an AdamW, or a data-parallel runner's shard of it). */
  optimizer: { setState(state: AdamWState): void };
  /** This recipe's schedule. */
  schedule: ScheduleState;
  /** This recipe's training data. */
  data: { fingerprint: DataFingerprint; path: string };
}

/** The restored trainer state, and notes on what differs from the checkpoint (an extension). */
export function restoreCheckpoint(c: CheckpointContents, dir: string, into: ResumeTarget): { state: TrainerState; notes: string[] } {
  const note = checkSchedule(c.state, into.schedule, dir);
  checkData(c.state.dataFingerprint, into.data, dir);
  const { adapter, optimizer } = into;
  const names = [...adapter.variables.keys()];
  const missing = names.find((n) => !c.adapter.has(n));
  const extra = [...c.adapter.keys()].find((n) => !adapter.variables.has(n));
  if (missing || extra) {
    throw new CheckpointError(`${dir}: its adapter does not match this recipe's (${missing ? `no '${missing}' in the checkpoint` : `unexpected '${extra}'`})`);
  }
  for (const [name, v] of adapter.variables) {
    const saved = c.adapter.get(name)!;
    if (saved.shape.length !== v.shape.length || saved.shape.some((d, i) => d !== v.shape[i])) {
      throw new CheckpointError(`${dir}: '${name}' is [${saved.shape.join(', ')}] in the checkpoint but [${v.shape.join(', ')}] in this adapter`);
    }
  }
  // Skipped steps did not reach the optimizer, so its count trails the trainer's by their number.
  const updates = c.state.step - c.state.skippedSteps.length;
  if (c.optimizer.step !== updates) throw new CheckpointError(`${dir}: optimizer step ${c.optimizer.step} differs from the trainer's ${updates} updates`);
  for (const [name, v] of adapter.variables) v.assign(tf.tensor(c.adapter.get(name)!.data, v.shape, 'float32'));
  optimizer.setState(c.optimizer);
  adapter.setRngState(c.state.rng.adapter);
  const state = structuredClone(c.state);
  state.totalSteps = into.schedule.totalSteps;
  state.schedule = into.schedule;
  return { state, notes: [...(c.notes ?? []), ...(note ? [note] : [])] };
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
    throw new CheckpointError(`${dir}: the run is at step ${saved.step} already, and this recipe trains ${now.totalSteps} steps in all; give training.max_steps larger than ${saved.step} to extend it`);
  }
  if (now.kind !== 'constant') {
    throw new CheckpointError(
      `${dir}: a ${now.kind} schedule decays the learning rate to 0 at its last step (${was.totalSteps}), so ${now.totalSteps} steps would change the rate of every step already taken; ${recipeHint}, or train a new run (lr_scheduler: constant runs can be extended)`,
    );
  }
  return `extending the run from ${was.totalSteps} to ${now.totalSteps} steps: steps ${saved.step + 1}–${now.totalSteps} train at the constant learning rate ${now.baseLr}, the data continues where it stopped; nothing else changes`;
}

function checkData(saved: DataFingerprint | undefined, now: ResumeTarget['data'], dir: string): void {
  if (!saved || (saved.examples === now.fingerprint.examples && saved.tokens === now.fingerprint.tokens && saved.sha256 === now.fingerprint.sha256)) return;
  const describe = (f: DataFingerprint): string => `${f.examples} examples, ${f.tokens} tokens, sha256 ${f.sha256.slice(0, 12)}`;
  throw new CheckpointError(
    `${dir}: the data changed since this checkpoint (it trained on ${describe(saved)}; ${now.path} now gives ${describe(now.fingerprint)}); resume with the data it was trained on, or start a new run`,
  );
}
