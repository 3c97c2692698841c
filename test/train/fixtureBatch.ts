/** The reference batch of a fixture's reference.safetensors as plain rows. */
import { SafetensorsFile } from '../../src/io/safetensors.js';

const rows = (d: ArrayLike<number | bigint>, b: number, s: number): number[][] =>
  Array.from({ length: b }, (_, i) => Array.from({ length: s }, (_, j) => Number(d[i * s + j])));

export function referenceBatch(file: string): { inputIds: number[][]; attentionMask: number[][]; labels: number[][] } {
  const ref = SafetensorsFile.open(file);
  try {
    const [b, s] = ref.entry('input_ids').shape as [number, number];
    const get = (k: string) => rows(ref.read(k).data as ArrayLike<number>, b, s);
    return { inputIds: get('input_ids'), attentionMask: get('attention_mask'), labels: ref.has('labels') ? get('labels') : get('input_ids') };
  } finally {
    ref.close();
  }
}
