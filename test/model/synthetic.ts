/**
 * Builds model folders for families we have no fixture of, from tiny-llama's weights, so
 * tests can check each family against an equivalent Llama model.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { fixture } from '../helpers.js';

export type Weights = Map<string, { shape: number[]; data: Float32Array }>;

export function llamaWeights(): Weights {
  const f = SafetensorsFile.open(fixture('tiny-llama/model.safetensors'));
  const out: Weights = new Map();
  for (const k of f.keys()) out.set(k, f.readFloat32(k));
  f.close();
  return out;
}

export function llamaConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(fixture('tiny-llama/config.json'), 'utf8')) as Record<string, unknown>;
}

export async function writeModel(config: Record<string, unknown>, weights: Weights): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tt-model-'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const tensors: Record<string, TensorToWrite> = {};
  for (const [k, v] of weights) tensors[k] = { dtype: 'F32', shape: v.shape, data: v.data };
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

/** Rows of several [rows_i, cols] matrices stacked into one. */
export function concatRows(...parts: { shape: number[]; data: Float32Array }[]): { shape: number[]; data: Float32Array } {
  const cols = parts[0]!.shape[1]!;
  const rows = parts.reduce((n, p) => n + p.shape[0]!, 0);
  const data = new Float32Array(rows * cols);
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.length;
  }
  return { shape: [rows, cols], data };
}

export const batch = {
  inputIds: [
    [5, 17, 200, 33, 4, 90, 311, 12, 7, 8, 401, 22],
    [9, 2, 45, 1, 88, 61, 3, 3, 3, 3, 3, 3],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
  ],
};
