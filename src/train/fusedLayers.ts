/**
 * The one-line note a run gets when its backend fuses decoder halves (src/ops/decoderHalves.ts)
 * but this model or adapter keeps them composed — a linear hook with no fused plan
 * (src/model/decoder.ts compositionReason): slower than the common case, and said so at start
 * rather than silently. (Every family fuses — GPT-2's Conv1D and ungated MLP, Qwen3's q/k norms —
 * and so do LoRA dropout and DoRA: the training step fixes each forward's dropout seed, as the
 * probe below does.)
 */
import { tf } from '../backend/tf.js';
import type { Decoder } from '../model/decoder.js';
import type { ModelHooks } from '../model/hooks.js';
import { OPS } from '../ops/names.js';

export function composedLayersNote(decoder: Decoder, hooks: ModelHooks): string | null {
  if (!tf.getKernel(OPS.mlpHalf.name, tf.getBackend())) return null;
  const reason = decoder.compositionReason(hooks, { training: true, dropoutSeed: 0 });
  if (!reason) return null;
  return `the decoder blocks run as composed ops (${reason}): the ${tf.getBackend()} backend's fused decoder halves cover LoRA (with its dropout and DoRA), ReFT and the frozen base`;
}
