/** ReFT math, positions, orthonormality, initialisation and state conversion. */
import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { useBackend } from '../../src/backend/select.js';
import type { AdapterHost } from '../../src/adapters/adapter.js';
import { parseReftConfig, parsePositions } from '../../src/adapters/reft/config.js';
import { ReftAdapter, interventionKey } from '../../src/adapters/reft/adapter.js';
import { contextPositions } from '../../src/adapters/reft/positions.js';
import { fromPyreftState, toPyreftState } from '../../src/adapters/reft/interventions.js';
import {
  householderOrthogonal,
  orthogonalCompletion,
  orthonormalityError,
  orthonormalizeColumns,
} from '../../src/adapters/reft/orthogonal.js';
import { Rng } from '../../src/adapters/random.js';
import { dropoutSeed } from '../../src/adapters/dropoutSeeds.js';
import { philoxDropout } from '../../src/adapters/philoxDropout.js';
import { philoxDropoutMask } from '../../src/adapters/philox.js';
import { interventionForward } from '../../src/adapters/reft/interventions.js';
import { stepSeed } from '../../src/train/step.js';
import { maxRelError } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const H = 12;
const host: AdapterHost = {
  spec: { modelType: 'llama', hiddenSize: H, numLayers: 3 },
  linearSites: () => [],
  denseWeight: () => {
    throw new Error('unused');
  },
};

const make = (raw: Record<string, unknown>, seed = 1) =>
  ReftAdapter.create(host, parseReftConfig({ intervention: 'loreft', rank: 3, layers: [1], positions: 'l2', ...raw }, 'test'), seed);

/** h + Rᵀ(act(W h + b) − R h) etc. in float64, for one vector. */
function reference(
  type: string,
  vars: Record<string, Float32Array>,
  h: number[],
  r: number,
  act: (x: number) => number = (x) => x,
): number[] {
  const out = [...h];
  const W = vars.weight ?? vars['learned_source.weight']!;
  const b = vars.bias ?? vars['learned_source.bias']!;
  for (let k = 0; k < r; k++) {
    let s = b[k]!;
    for (let i = 0; i < H; i++) s += W[k * H + i]! * h[i]!;
    s = act(s);
    let sub = 0;
    if (type === 'loreft') for (let i = 0; i < H; i++) sub += vars.rotate_layer![i * r + k]! * h[i]!;
    if (type === 'noreft') {
      sub = vars['proj_layer.bias']?.[k] ?? 0;
      for (let i = 0; i < H; i++) sub += vars['proj_layer.weight']![k * H + i]! * h[i]!;
    }
    for (let i = 0; i < H; i++)
      out[i]! += (s - sub) * (type === 'noreft' ? vars['proj_layer.weight']![k * H + i]! : vars.rotate_layer![i * r + k]!);
  }
  return out;
}

function localVars(adapter: ReftAdapter, key: string): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, v] of adapter.variables) if (name.startsWith(`${key}.`)) out[name.slice(key.length + 1)] = v.dataSync() as Float32Array;
  return out;
}

describe('ReFT interventions', () => {
  it.each<[string, Record<string, unknown>]>([
    ['loreft', {}],
    ['direft', {}],
    ['noreft', { add_bias: true }],
    ['loreft', { act_fn: 'gelu' }],
  ])("%s %j edits exactly the listed positions with pyreft's formula", (type, extra) => {
    const adapter = make({ intervention: type, ...extra });
    const key = interventionKey(1, 0);
    const h = tf.randomNormal([2, 5, H], 0, 1, 'float32', 4);
    const positions = [
      [3, 4],
      [0, -1],
    ];
    const out = adapter.blockOutput(1, h, { training: false, positions }).arraySync() as number[][][];
    const hs = h.arraySync() as number[][][];
    const vars = localVars(adapter, key);
    const act = extra.act_fn === 'gelu' ? (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2)) : undefined;
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < 5; t++) {
        const want = positions[b]!.includes(t) ? reference(type, vars, hs[b]![t]!, 3, act) : hs[b]![t]!;
        expect(maxRelError(out[b]![t]!, want), `${b},${t}`).toBeLessThan(1e-5);
      }
    }
    // Other layers pass through untouched.
    expect(adapter.blockOutput(0, h, { training: false, positions })).toBe(h);
    adapter.dispose();
  });

  it('rejects missing or out-of-range positions with a clear message', () => {
    const adapter = make({});
    const h = tf.zeros([1, 4, H]);
    expect(() => adapter.blockOutput(1, h, { training: true })).toThrow(/needs positions when training: pass ctx.positions/);
    // Generation past the prompt passes no positions: nothing is edited.
    expect(adapter.blockOutput(1, h, { training: false })).toBe(h);
    expect(() => adapter.blockOutput(1, h, { training: false, positions: [[4]] })).toThrow(
      /position 4 in row 0 is outside the sequence \[0, 4\)/,
    );
    expect(() => adapter.blockOutput(1, h, { training: false, positions: [[1], [2]] })).toThrow(/2 rows but the batch has 1/);
    adapter.dispose();
  });

  it('splits first/last positions between two interventions per layer unless weights are shared', () => {
    const split = make({ positions: 'f1+l1', layers: [0, 2] });
    expect(split.interventions.map((i) => i.key)).toEqual([
      interventionKey(0, 0),
      interventionKey(2, 0),
      interventionKey(0, 1),
      interventionKey(2, 1),
    ]);
    const shared = make({ positions: 'f1+l1', layers: [0, 2], share_weights: true });
    expect(shared.interventions.map((i) => i.key)).toEqual([interventionKey(0, 0), interventionKey(2, 0)]);
    // Group 0 edits the first half of each row, group 1 the second.
    const h = tf.randomNormal([1, 6, H], 0, 1, 'float32', 5);
    const positions = contextPositions([[[0, -1]], [[5]]]);
    expect(positions).toEqual([[0, -1, 5, -1]]);
    const out = split.blockOutput(0, h, { training: false, positions }).arraySync() as number[][][];
    const hs = h.arraySync() as number[][][];
    const g0 = localVars(split, interventionKey(0, 0));
    const g1 = localVars(split, interventionKey(0, 1));
    expect(maxRelError(out[0]![0]!, reference('loreft', g0, hs[0]![0]!, 3))).toBeLessThan(1e-5);
    expect(maxRelError(out[0]![5]!, reference('loreft', g1, hs[0]![5]!, 3))).toBeLessThan(1e-5);
    expect(out[0]!.slice(1, 5)).toEqual(hs[0]!.slice(1, 5));
    split.dispose();
    shared.dispose();
  });

  it('lets gradients reach the parameters through the intervened positions only', () => {
    const adapter = make({});
    const h = tf.randomNormal([1, 4, H], 0, 1, 'float32', 6);
    const vars = [...adapter.variables.values()];
    const { grads } = tf.variableGrads(
      () =>
        adapter
          .blockOutput(1, h, { training: true, positions: [[2]] })
          .square()
          .sum() as tf.Scalar,
      vars,
    );
    for (const v of vars) expect(Math.max(...grads[v.name]!.abs().dataSync())).toBeGreaterThan(0);
    const g = tf
      .grad((x: tf.Tensor) => adapter.blockOutput(1, x, { training: false, positions: [[2]] }).sum())(h)
      .arraySync() as number[][][];
    expect(g[0]![0]!.every((v) => v === 1)).toBe(true); // untouched positions: identity
    adapter.dispose();
  });

  it('applies dropout to the edited vectors only in training, replayably', () => {
    const adapter = make({ dropout: 0.5 });
    const h = tf.randomNormal([2, 4, H], 0, 1, 'float32', 6);
    const ctx = (training: boolean) => ({
      training,
      positions: [
        [1, 2],
        [3, -1],
      ],
    });
    const evalOut = adapter.blockOutput(1, h, ctx(false)).dataSync();
    const state = adapter.getRngState();
    const a = adapter.blockOutput(1, h, ctx(true)).dataSync();
    expect(maxRelError(a, evalOut)).toBeGreaterThan(1e-3);
    adapter.setRngState(state);
    expect(adapter.blockOutput(1, h, ctx(true)).dataSync()).toEqual(a);
    // Positions not intervened on never see dropout.
    expect(Array.from(a).slice(0, H)).toEqual(Array.from(h.dataSync()).slice(0, H));
    adapter.dispose();
  });
  it("drops the whole edited vector of each intervened row with the Philox mask of the site's seed in this forward (LoRA's scheme)", () => {
    const rate = 0.3;
    const adapter = make({ dropout: rate, layers: [0, 2], positions: 'f1+l1', share_weights: true });
    const [batch, seq] = [2, 5];
    const h = tf.randomNormal([batch, seq, H], 0, 1, 'float32', 7);
    const positions = [
      [1, 2],
      [3, -1],
    ];
    const ctx = { training: true, positions, dropoutSeed: stepSeed(11, 4) };
    const before = adapter.getRngState();
    const out = adapter.blockOutput(2, h, ctx).dataSync();
    // A fixed per-forward seed: the adapter's own stream is not drawn from.
    expect(adapter.getRngState()).toEqual(before);
    // The layer-2 intervention is site 1; its edit of the intervened rows (gathered in position order), dropped by that site's mask.
    const site = adapter.interventions.findIndex((i) => i.layer === 2);
    expect(site).toBe(1);
    const seed = dropoutSeed(ctx, site, new Rng(0));
    const iv = adapter.interventions[site]!;
    const rows = positions.flatMap((p, b) => p.filter((q) => q >= 0).map((q) => b * seq + q));
    const hv = h.dataSync();
    const selected = tf.tensor(
      rows.flatMap((r) => Array.from(hv.subarray(r * H, (r + 1) * H))),
      [rows.length, H],
    );
    const edited = interventionForward('loreft', iv.vars, selected, null).dataSync();
    const viaReference = philoxDropout(tf.tensor(edited, [rows.length, H]), rate, seed).dataSync();
    const mask = philoxDropoutMask(seed, 0, rows.length * H, rate);
    expect(Array.from(viaReference)).toEqual(Array.from(edited, (v, i) => Math.fround(v * mask[i]!)));
    expect(mask.some((m) => m === 0)).toBe(true);
    // Kept where intervened, as the adapter composes it: h + (dropped edit − h) there, h elsewhere.
    const want = Array.from(hv);
    rows.forEach((r, k) => {
      for (let j = 0; j < H; j++) want[r * H + j] = Math.fround(hv[r * H + j]! + Math.fround(viaReference[k * H + j]! - hv[r * H + j]!));
    });
    expect(Array.from(out)).toEqual(want);
    // The same forward seed, the same output; the next step's seed, another mask.
    expect(Array.from(adapter.blockOutput(2, h, ctx).dataSync())).toEqual(Array.from(out));
    const next = adapter.blockOutput(2, h, { ...ctx, dropoutSeed: stepSeed(11, 5) }).dataSync();
    expect(Array.from(next)).not.toEqual(Array.from(out));
    adapter.dispose();
  });
});

describe('ReFT initialisation and orthonormality', () => {
  it('starts with orthonormal R, nn.Linear-sized W and b, deterministically per seed', () => {
    const a = make({ layers: 'all', rank: 4 }, 9);
    const b = make({ layers: 'all', rank: 4 }, 9);
    expect(a.interventions.map((i) => i.layer)).toEqual([0, 1, 2]);
    for (const [k, v] of a.variables) expect(b.variables.get(k)!.dataSync(), k).toEqual(v.dataSync());
    const r = a.variables.get(`${interventionKey(0, 0)}.rotate_layer`)!;
    expect(r.shape).toEqual([H, 4]);
    expect(orthonormalityError(r.dataSync(), H, 4)).toBeLessThan(1e-6);
    const w = a.variables.get(`${interventionKey(0, 0)}.weight`)!.dataSync();
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(H));
    a.dispose();
    b.dispose();
  });

  it('afterStep retracts R to orthonormal rows and leaves an orthonormal R unchanged', () => {
    const adapter = make({ rank: 4 });
    const r = adapter.variables.get(`${interventionKey(1, 0)}.rotate_layer`)!;
    const before = r.dataSync().slice();
    adapter.afterStep();
    expect(maxRelError(r.dataSync(), before)).toBeLessThan(1e-6);
    r.assign(r.add(tf.randomNormal(r.shape, 0, 0.1, 'float32', 2)));
    expect(orthonormalityError(r.dataSync(), H, 4)).toBeGreaterThan(1e-3);
    const stepped = r.dataSync().slice();
    adapter.afterStep();
    expect(orthonormalityError(r.dataSync(), H, 4)).toBeLessThan(1e-6);
    // The retraction is the Q of a QR: it spans the same subspace as the stepped matrix.
    const q = orthonormalizeColumns(stepped, H, 4);
    expect(maxRelError(r.dataSync(), q)).toBeLessThan(1e-6);
    adapter.dispose();
  });

  it('NoReFT has no rotation to retract', () => {
    const adapter = make({ intervention: 'noreft' });
    const before = [...adapter.variables.values()].map((v) => v.dataSync().slice());
    adapter.afterStep();
    [...adapter.variables.values()].forEach((v, i) => expect(v.dataSync()).toEqual(before[i]));
    adapter.dispose();
  });
});

describe('pyreft state dicts', () => {
  it("DiReFT's parametrised rotation (original, base) maps back to R exactly", () => {
    const rng = new Rng(3);
    const rotate = Float32Array.from(
      orthonormalizeColumns(
        Array.from({ length: H * 3 }, () => rng.normal()),
        H,
        3,
      ),
    );
    const values = { rotate, weight: new Float32Array(3 * H).fill(0.1), bias: new Float32Array(3).fill(0.2) };
    const state = toPyreftState('direft', values, H, 3);
    expect(Object.keys(state)).toEqual([
      'rotate_layer.parametrizations.weight.original',
      'rotate_layer.parametrizations.weight.0.base',
      'learned_source.weight',
      'learned_source.bias',
    ]);
    const base = state['rotate_layer.parametrizations.weight.0.base']!;
    expect(orthonormalityError(base.data, H, H)).toBeLessThan(1e-6);
    const back = fromPyreftState('direft', state, H, 'test');
    expect(back.rank).toBe(3);
    expect(back.values.rotate).toEqual(rotate);
  });

  it('reads a trained Householder parametrisation as torch computes it', () => {
    // A non-trivial `original`: Q = base · H₀H₁H₂ I[:, :3] · diag(sign) must have orthonormal columns
    // and equal the explicit product of reflections.
    const rng = new Rng(4);
    const original = Float64Array.from({ length: H * 3 }, () => rng.normal() * 0.3);
    for (let j = 0; j < 3; j++) original[j * 3 + j] = j === 1 ? 1.4 : -1.2; // int() → 1, −1
    const base = orthogonalCompletion(
      orthonormalizeColumns(
        Array.from({ length: H * 3 }, () => rng.normal()),
        H,
        3,
      ),
      H,
      3,
    );
    const q = householderOrthogonal(original, H, 3, base);
    expect(orthonormalityError(q, H, 3)).toBeLessThan(1e-12);
    // Explicit: build each H_j as a full matrix.
    let m: number[][] = Array.from({ length: H }, (_, i) => Array.from({ length: H }, (_, j) => (i === j ? 1 : 0)));
    for (let j = 0; j < 3; j++) {
      const v = Array.from({ length: H }, (_, i) => (i < j ? 0 : i === j ? 1 : original[i * 3 + j]!));
      const tau = 2 / v.reduce((s, x) => s + x * x, 0);
      const hj = v.map((vi, i) => v.map((vk, k) => (i === k ? 1 : 0) - tau * vi * vk));
      m = m.map((row) => hj[0]!.map((_, k) => row.reduce((s, x, l) => s + x * hj[l]![k]!, 0)));
    }
    const signs = [-1, 1, -1];
    for (let i = 0; i < H; i++) {
      for (let c = 0; c < 3; c++) {
        let want = 0;
        for (let l = 0; l < H; l++) want += base[i * H + l]! * m[l]![c]! * signs[c]!;
        expect(Math.abs(q[i * 3 + c]! - want)).toBeLessThan(1e-12);
      }
    }
  });

  it('names missing or extra tensors and wrong shapes', () => {
    const adapter = make({});
    const [rec] = adapter.toPyreft();
    const state = { ...rec!.state };
    delete state.bias;
    expect(() => fromPyreftState('loreft', state, H, 'f.bin')).toThrow(
      "f.bin: missing 'bias' (a LoreftIntervention holds weight, bias, rotate_layer)",
    );
    expect(() => fromPyreftState('loreft', { ...rec!.state, extra: rec!.state.bias! }, H, 'f.bin')).toThrow(/unexpected 'extra'/);
    expect(() => fromPyreftState('loreft', rec!.state, H + 1, 'f.bin')).toThrow(
      /'weight' has shape \[3, 12\] but this model \(hidden size 13\) needs \[3, 13\]/,
    );
    adapter.dispose();
  });

  it('parses position specs as pyreft does', () => {
    expect(parsePositions('f7+l7')).toEqual({ first: 7, last: 7 });
    expect(parsePositions('l1')).toEqual({ first: 0, last: 1 });
    expect(parsePositions('f3')).toEqual({ first: 3, last: 0 });
    expect(() => parsePositions('first3')).toThrow(/not a position spec; expected f<n>, l<n> or f<n>\+l<m>/);
    expect(() => parsePositions('f0')).toThrow(/selects no position/);
    expect(() => parseReftConfig({ intervention: 'loreft', act_fn: 'swishy' }, 'recipe adapter')).toThrow(
      /recipe adapter: 'act_fn' is "swishy"; expected null or one of/,
    );
    expect(() => parseReftConfig({ intervention: 'loreft', layers: [1, 1] }, 'x')).toThrow(/without repeated layers/);
    expect(() => parseReftConfig({ intervention: 'consreft' }, 'x')).toThrow(
      /'intervention' is "consreft"; expected one of loreft, direft, noreft/,
    );
  });
});

/** Abramowitz–Stegun 7.1.26 is too coarse for 1e-5; use a series / continued fraction. */
function erf(x: number): number {
  const t = Math.abs(x);
  let sum = t;
  let term = t;
  for (let n = 1; n < 60; n++) {
    term *= (-t * t) / n;
    sum += term / (2 * n + 1);
  }
  const v = (2 / Math.sqrt(Math.PI)) * sum;
  return x < 0 ? -v : v;
}
