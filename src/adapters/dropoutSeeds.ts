/**
 * Dropout seeds for adapter hooks.
 *
 * By default each dropout call draws the next seed from the adapter's own stream (saved
 * and restored with getRngState/setRngState for exact resume). Activation checkpointing
 * recomputes a block in the backward pass and so calls the hooks twice per step; the
 * recomputation must drop the same units as the forward pass. A forward that sets
 * `dropoutSeed` on its context (an integer, new for each forward) gets seeds derived from
 * that number and the call site instead, identical in both passes.
 */
import type { ForwardContext } from '../model/hooks.js';
import type { Rng } from './random.js';

/** A seed for dropout call `site` (a stable index) of this forward. */
export function dropoutSeed(ctx: ForwardContext, site: number, stream: Rng): number {
  const fixed = ctx.dropoutSeed;
  if (fixed === undefined) return stream.nextSeed();
  if (!Number.isSafeInteger(fixed)) throw new Error(`ctx.dropoutSeed must be an integer, got ${fixed}`);
  return mix(mix(fixed >>> 0, Math.floor(fixed / 2 ** 32) >>> 0), site);
}

/** A 32-bit hash of two 32-bit values (murmur3's finaliser over a combined word). */
function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
