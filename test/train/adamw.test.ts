import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { loadBaseModel } from '../../src/model/load.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import * as adapters from '../../src/adapters/index.js';
import { AdamW } from '../../src/train/adamw.js';
import { trainStep } from '../../src/train/step.js';
import { fixture, maxRelError } from '../helpers.js';
import { referenceBatch } from './fixtureBatch.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe.each([
  ['peft-lora-llama', 'tiny-llama'],
  ['peft-lora-qwen2', 'tiny-qwen2'],
])('%s: ten AdamW steps follow PyTorch', (name, base) => {
  it('loss before each step and the adapter after ten steps, within 1e-4 relative', async () => {
    // Never skipped: without the adapters' loader this fails here, by name.
    expect(typeof adapters.loadAdapter, 'src/adapters must export loadAdapter(dir, model)').toBe('function');
    const model = loadBaseModel(fixture(base));
    const adapter = await adapters.loadAdapter(fixture(`${name}/adapter`), model);
    const traj = JSON.parse(readFileSync(fixture(`${name}/trajectory.json`), 'utf8')) as {
      lr: number;
      betas: [number, number];
      eps: number;
      weight_decay: number;
      steps: number;
      loss_before_each_step: number[];
    };
    const batch = referenceBatch(fixture(`${name}/reference.safetensors`));
    const opt = new AdamW(adapter.variables, { lr: traj.lr, betas: traj.betas, eps: traj.eps, weightDecay: traj.weight_decay });
    const losses: number[] = [];
    for (let i = 0; i < traj.steps; i++) {
      losses.push(trainStep(model, adapter, opt, [batch], { lr: traj.lr, maxGradNorm: null, activationCheckpointing: false }).loss);
    }
    expect(losses).toHaveLength(10);
    expect(maxRelError(losses, traj.loss_before_each_step)).toBeLessThan(1e-4);
    losses.forEach((l, i) => expect(Math.abs(l - traj.loss_before_each_step[i]!) / traj.loss_before_each_step[i]!).toBeLessThan(1e-4));

    const after = SafetensorsFile.open(fixture(`${name}/adapter-after-10-steps/adapter_model.safetensors`));
    expect(new Set(adapter.variables.keys())).toEqual(new Set(after.keys()));
    for (const key of after.keys()) {
      const err = maxRelError(adapter.variables.get(key)!.dataSync(), after.readFloat32(key).data);
      expect(err, key).toBeLessThan(1e-4);
    }
    // The weights moved: the comparison is not against the starting point.
    const before = SafetensorsFile.open(fixture(`${name}/adapter/adapter_model.safetensors`));
    const moved = before.keys().some((k) => maxRelError(before.readFloat32(k).data, after.readFloat32(k).data) > 1e-3);
    expect(moved).toBe(true);
    after.close();
    before.close();
    opt.dispose();
    adapter.dispose();
    model.dispose();
  });
});

/** PyTorch's AdamW for one parameter, in float64. */
function reference(p: number[], grads: number[][], lr: number, b1: number, b2: number, eps: number, wd: number): number[] {
  let m = p.map(() => 0);
  let v = p.map(() => 0);
  grads.forEach((g, i) => {
    const t = i + 1;
    p = p.map((x) => x * (1 - lr * wd));
    m = m.map((x, j) => b1 * x + (1 - b1) * g[j]!);
    v = v.map((x, j) => b2 * x + (1 - b2) * g[j]! ** 2);
    p = p.map((x, j) => x - (lr / (1 - b1 ** t)) * (m[j]! / (Math.sqrt(v[j]!) / Math.sqrt(1 - b2 ** t) + eps)));
  });
  return p;
}

describe('AdamW update', () => {
  const grads = [
    [0.5, -1, 2],
    [0.1, 0.3, -0.2],
    [-0.4, 0.9, 0.05],
  ];
  const start = [1, -2, 0.5];

  it('matches the formula, with and without weight decay', () => {
    for (const wd of [0, 0.1]) {
      const w = tf.variable(tf.tensor1d(start));
      const opt = new AdamW(new Map([['w', w]]), { lr: 0.05, betas: [0.9, 0.99], eps: 1e-8, weightDecay: wd });
      for (const g of grads) opt.step(new Map([['w', tf.tensor1d(g)]]));
      expect(maxRelError(w.dataSync(), reference(start, grads, 0.05, 0.9, 0.99, 1e-8, wd))).toBeLessThan(1e-6);
      expect(opt.stepCount).toBe(3);
      opt.dispose();
      w.dispose();
    }
  });

  it('multiplies each gradient by gradScale first (clipping), as torch clips before stepping', () => {
    const w = tf.variable(tf.tensor1d(start));
    const opt = new AdamW(new Map([['w', w]]), { lr: 0.05, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
    const scales = [0.25, 1, 0.5];
    grads.forEach((g, i) => opt.step(new Map([['w', tf.tensor1d(g)]]), 0.05, scales[i]));
    const scaled = grads.map((g, i) => g.map((x) => x * scales[i]!));
    expect(maxRelError(w.dataSync(), reference(start, scaled, 0.05, 0.9, 0.99, 1e-8, 0.1))).toBeLessThan(1e-6);
    // and not the unscaled update
    expect(maxRelError(w.dataSync(), reference(start, grads, 0.05, 0.9, 0.99, 1e-8, 0.1))).toBeGreaterThan(1e-3);
    opt.dispose();
    w.dispose();
  });

  it('exempts the parameters noDecay names from weight decay', () => {
    const a = tf.variable(tf.tensor1d(start));
    const bias = tf.variable(tf.tensor1d(start));
    const opt = new AdamW(
      new Map([
        ['x.weight', a],
        ['x.bias', bias],
      ]),
      { lr: 0.05, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.5, noDecay: (n) => n.endsWith('bias') },
    );
    opt.step(
      new Map([
        ['x.weight', tf.tensor1d(grads[0]!)],
        ['x.bias', tf.tensor1d(grads[0]!)],
      ]),
    );
    expect(maxRelError(a.dataSync(), reference(start, grads.slice(0, 1), 0.05, 0.9, 0.99, 1e-8, 0.5))).toBeLessThan(1e-6);
    expect(maxRelError(bias.dataSync(), reference(start, grads.slice(0, 1), 0.05, 0.9, 0.99, 1e-8, 0))).toBeLessThan(1e-6);
  });

  it('continues exactly from a saved state', () => {
    const run = (split: boolean): Float32Array => {
      const w = tf.variable(tf.tensor1d(start));
      const opts = { lr: 0.05, betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.01 };
      let opt = new AdamW(new Map([['w', w]]), opts);
      grads.forEach((g, i) => {
        if (split && i === 2) {
          const state = opt.getState();
          opt.dispose();
          opt = new AdamW(new Map([['w', w]]), opts);
          opt.setState(state);
        }
        opt.step(new Map([['w', tf.tensor1d(g)]]));
      });
      return w.dataSync() as Float32Array;
    };
    expect(Array.from(run(true))).toEqual(Array.from(run(false)));
  });

  it('refuses bad settings and mismatched state, by name', () => {
    const w = tf.variable(tf.zeros([2, 3]));
    expect(() => new AdamW(new Map([['w', w]]), { lr: 1e-3, betas: [1, 0.999], eps: 1e-8, weightDecay: 0 })).toThrow(
      /betas must lie in \[0, 1\)/,
    );
    const opt = new AdamW(new Map([['w', w]]), { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    expect(() => opt.step(new Map([['nope', tf.zeros([2, 3])]]))).toThrow(/gradient for unknown parameter 'nope'/);
    const bad = { step: 1, moments: new Map([['w', { shape: [3, 2], m: new Float32Array(6), v: new Float32Array(6) }]]) };
    expect(() => opt.setState(bad)).toThrow(/'w' has shape \[3, 2\] but the parameter is \[2, 3\]/);
    expect(() => opt.setState({ step: 1, moments: new Map() })).toThrow(/no moments for parameter 'w'/);
  });
});
