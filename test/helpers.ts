/** Shared test helpers: fixture paths and the relative-error measure the issues define. */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../src/io/safetensors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..');

/**
 * A fixture path: the project's own copy under test/fixtures/ (what CI uses), falling back
 * to ../shared/fixtures beside the checkout.
 */
export function fixture(rel: string): string {
  const own = path.join(here, 'fixtures', rel);
  if (existsSync(own)) return own;
  return path.resolve(repoRoot, '..', 'shared', 'fixtures', rel);
}

/** max |ours − ref| / max |ref|, over the positions where `keep` (if given) is true. */
export function maxRelError(ours: ArrayLike<number>, ref: ArrayLike<number>, keep?: (i: number) => boolean): number {
  if (ours.length !== ref.length) throw new Error(`length ${ours.length} vs ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (keep && !keep(i)) continue;
    const d = Math.abs(ours[i]! - ref[i]!);
    if (!(d <= num)) num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(ref[i]!));
  }
  return num / den;
}

const rows = (d: ArrayLike<number | bigint>, b: number, s: number): number[][] =>
  Array.from({ length: b }, (_, i) => Array.from({ length: s }, (_, j) => Number(d[i * s + j])));

/** A [batch, seq] tensor (ids or mask, stored as any integer or float dtype) as plain number rows. */
export function tensorRows(t: { shape: readonly number[]; data: ArrayLike<number | bigint> }): number[][] {
  const [b, s] = t.shape as [number, number];
  return rows(t.data, b, s);
}

/** The reference batch of a fixture's reference.safetensors as plain rows (labels = input_ids when absent). */
export function referenceBatch(file: string): { inputIds: number[][]; attentionMask: number[][]; labels: number[][] } {
  const ref = SafetensorsFile.open(file);
  try {
    const [b, s] = ref.entry('input_ids').shape as [number, number];
    const get = (k: string) => rows(ref.read(k).data, b, s);
    return {
      inputIds: get('input_ids'),
      attentionMask: get('attention_mask'),
      labels: ref.has('labels') ? get('labels') : get('input_ids'),
    };
  } finally {
    ref.close();
  }
}
