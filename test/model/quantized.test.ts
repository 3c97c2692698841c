import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import { copyFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { registerDevice, type Device } from '../../src/backend/device.js';
import { engineDevice } from '../../src/backend/cpu/device.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { quantStateKey } from '../../src/quant/bnbState.js';
import { fixture, maxRelError, referenceBatch } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('4-bit base weights', () => {
  const ref = SafetensorsFile.open(fixture('tiny-llama/reference.safetensors'));
  const nf4Ref = SafetensorsFile.open(fixture('tiny-llama-bnb-nf4/reference.safetensors'));
  const batch = referenceBatch(fixture('tiny-llama/reference.safetensors'));
  const keep = (i: number) => batch.attentionMask.flat()[Math.floor(i / 512)] === 1;

  function run(dir: string, quantization?: Parameters<typeof loadBaseModel>[1]) {
    const model = loadBaseModel(dir, quantization);
    const out = tf.tidy(() => {
      const { logits } = model.run(batch);
      return { logits: logits.dataSync() as Float32Array, loss: causalLmLoss(logits, batch.labels).dataSync()[0]! };
    });
    const quantized = [...model.weights.linear.values()].filter((w) => w.kind === 'quantized').length;
    model.dispose();
    return { ...out, quantized };
  }

  it('a bitsandbytes checkpoint loads as shipped and matches its reference', () => {
    const out = run(fixture('tiny-llama-bnb-nf4'));
    expect(out.quantized).toBe(3 * 7);
    expect(maxRelError(out.logits, nf4Ref.readFloat32('logits').data, keep)).toBeLessThan(1e-4);
    const refLoss = nf4Ref.readFloat32('loss').data[0]!;
    expect(Math.abs(out.loss - refLoss) / refLoss).toBeLessThan(1e-4);
  });

  it('quantising tiny-llama at load gives the same logits as the bitsandbytes checkpoint', () => {
    const out = run(fixture('tiny-llama'), { quantization: { type: 'nf4', blocksize: 64, doubleQuant: true } });
    expect(out.quantized).toBe(21);
    expect(maxRelError(out.logits, nf4Ref.readFloat32('logits').data, keep)).toBeLessThan(1e-4);
    // …and differs from the f32 model by the quantisation error, not by nothing.
    expect(maxRelError(out.logits, ref.readFloat32('logits').data, keep)).toBeGreaterThan(1e-3);
  });
});

/** The cpu device, recording which 4-bit weights the loader places on it and frees. */
function recordingDevice(failAt = Infinity): { device: Device; stored: string[]; released: number } {
  const log = { stored: [] as string[], released: 0 };
  const device: Device = {
    ...engineDevice,
    backend: 'cpu',
    storeQuantizedWeight(q, name) {
      if (log.stored.length === failAt) throw new Error(`out of device memory placing '${name}'`);
      log.stored.push(name);
      return q;
    },
    releaseQuantizedWeight() {
      log.released++;
    },
  };
  return Object.assign(log, { device });
}

/** A copy of the bitsandbytes fixture with `edit` applied to its tensors. */
async function corruptedCopy(edit: (tensors: Record<string, TensorToWrite>) => void): Promise<string> {
  const src = fixture('tiny-llama-bnb-nf4');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tt-bnb-corrupt-'));
  copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  const file = SafetensorsFile.open(path.join(src, 'model.safetensors'));
  const tensors: Record<string, TensorToWrite> = {};
  for (const key of file.keys()) tensors[key] = file.read(key);
  file.close();
  edit(tensors);
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

describe('placing a 4-bit model on the device', () => {
  afterEach(() => registerDevice(engineDevice));

  it('places every 4-bit weight once, by name, after all are read; the model frees them', () => {
    const rec = recordingDevice();
    registerDevice(rec.device);
    const model = loadBaseModel(fixture('tiny-llama-bnb-nf4'));
    expect(rec.stored).toHaveLength(21);
    expect(rec.stored).toContain('model.layers.2.mlp.down_proj.weight');
    model.dispose();
    expect(rec.released).toBe(21);
  });

  it('all or nothing: when one cannot be placed, those placed are freed and no tensor is left', () => {
    const rec = recordingDevice(5);
    registerDevice(rec.device);
    const before = tf.memory().numTensors;
    expect(() => loadBaseModel(fixture('tiny-llama-bnb-nf4'))).toThrow(/out of device memory placing/);
    expect(rec.released).toBe(5);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('a pre-quantised folder whose quant state does not fit its tensors', () => {
  afterEach(() => registerDevice(engineDevice));
  const name = 'model.layers.2.mlp.down_proj.weight'; // the last layer: everything before it loads fine

  it.each([
    [
      'absmax length ≠ ceil(numel / blocksize)',
      (t: Record<string, TensorToWrite>) => {
        const a = t[`${name}.absmax`]!;
        t[`${name}.absmax`] = { ...a, shape: [a.shape[0]! - 1], data: a.data.subarray(1) };
      },
      new RegExp(`4-bit weight '${name.replace(/\./g, '\\.')}': absmax has 127 values; 8192 values in blocks of 64 need 128`),
    ],
    [
      'packed byte count ≠ ceil(numel / 2)',
      (t: Record<string, TensorToWrite>) => {
        const p = t[name]!;
        t[name] = { ...p, shape: [p.shape[0]! - 2, 1], data: p.data.subarray(2) };
      },
      /has 4094 bytes, but shape \[64, 128\] needs 4096/,
    ],
    [
      "a quant-state shape other than the config's",
      (t: Record<string, TensorToWrite>) => {
        const key = quantStateKey(name, 'nf4');
        const json = new TextDecoder().decode(t[key]!.data).replace('"shape": [64, 128]', '"shape": [128, 64]');
        const bytes = new TextEncoder().encode(json);
        t[key] = { dtype: 'U8', shape: [bytes.length], data: bytes };
      },
      /4-bit weight 'model\.layers\.2\.mlp\.down_proj\.weight' has quant_state shape \[128, 64\]; the model's config needs \[64, 128\]/,
    ],
  ])('%s: a one-line error naming the tensor, before anything is placed on the device', async (_what, edit, message) => {
    const dir = await corruptedCopy(edit);
    const rec = recordingDevice();
    registerDevice(rec.device);
    const before = tf.memory().numTensors;
    let error: Error | undefined;
    try {
      loadBaseModel(dir);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toMatch(message);
    expect(error!.message).toContain(name);
    expect(error!.message).not.toContain('\n');
    expect(rec.stored).toEqual([]); // nothing uploaded…
    expect(tf.memory().numTensors).toBe(before); // …and nothing half-loaded
  });
});
