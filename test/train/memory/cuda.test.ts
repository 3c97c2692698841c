/**
 * src/train/memory/cuda.ts: what 4-bit weights hold on cuda outside tfjs, against bytes counted
 * by hand from bitsandbytes' layout and the pool's 256-byte granularity, which matrices the
 * dequantisation scratch holds at once, the fused halves' scratch for LoRA dropout, q/k norms and DoRA,
 * and the fused ops' stand-ins, made from the ops' signatures (src/ops/names.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { cudaRules, dequantizationGroups, fourBitDeviceBytes, withCudaFusedOps } from '../../../src/train/memory/cuda.js';
import { tf } from '../../../src/backend/tf.js';
import { useBackend } from '../../../src/backend/select.js';
import { rmsNorm } from '../../../src/ops/rmsNorm.js';
import { layerNorm } from '../../../src/ops/layerNorm.js';
import { crossEntropySum } from '../../../src/ops/crossEntropy.js';
import { OPS } from '../../../src/ops/names.js';
import { RESTORED_CHECKPOINT, type Trace } from '../../../src/train/memory/trace.js';

describe('fourBitDeviceBytes', () => {
  // Two matrices of 4096 values: 64 blocks of 64; the packed codes 2048 bytes.
  const matrices = [
    { inFeatures: 64, outFeatures: 64 },
    { inFeatures: 128, outFeatures: 32 },
  ];
  const alone = matrices.map((m) => [m]);

  it('double quantisation: codes, 8-bit absmax, nested absmax and code table, each rounded to 256 bytes', () => {
    // per matrix: 2048 + 256 (64 u8) + 256 (one nested f32) + 1024 (256 f32 codes)
    expect(fourBitDeviceBytes(alone, { blocksize: 64, doubleQuant: true }, 'bf16-mixed')).toEqual({ weights: 2 * 3584, scratch: 8192 });
  });

  it('plain absmax: one f32 per block; the scratch is f32 outside bf16-mixed', () => {
    expect(fourBitDeviceBytes(alone, { blocksize: 64, doubleQuant: false }, 'fp32')).toEqual({ weights: 2 * (2048 + 256), scratch: 16384 });
  });

  it('an odd count pads the codes to whole 32-bit words and the last block', () => {
    // 3 × 5 = 15 values: 8 bytes of codes (two words), one block of 64
    expect(fourBitDeviceBytes([[{ inFeatures: 5, outFeatures: 3 }]], { blocksize: 64, doubleQuant: false }, 'bf16-mixed')).toEqual({
      weights: 256 + 256,
      scratch: 256,
    });
  });

  it('matrices dequantised together hold the scratch side by side, each in a 256-byte slot', () => {
    const group = [...matrices, { inFeatures: 5, outFeatures: 3 }];
    expect(fourBitDeviceBytes([group], { blocksize: 64, doubleQuant: false }, 'bf16-mixed').scratch).toBe(8192 + 8192 + 256);
    expect(fourBitDeviceBytes([group, [matrices[0]!]], { blocksize: 64, doubleQuant: false }, 'fp32').scratch).toBe(16384 + 16384 + 256);
  });
});

describe('dequantizationGroups', () => {
  const layer = (i: number) => ({
    projections: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'].map((role) => ({ role, name: `${i}.${role}` })),
  });
  const traceOf = (kernels: string[]): Trace => ({
    twin: {} as Trace['twin'],
    buffers: [],
    backend: 'cuda',
    precision: 'bf16-mixed',
    events: kernels.map((name) => ({ kind: 'kernel' as const, name, inputs: [] })),
  });
  const names = (groups: Array<Array<{ name: string }>>) => groups.map((g) => g.map((p) => p.name));

  it("fused halves dequantise a half-layer's matrices at once", () => {
    expect(names(dequantizationGroups([layer(0), layer(1)], traceOf(['MatMul', OPS.mlpHalf.name])))).toEqual([
      ['0.q', '0.k', '0.v', '0.o'],
      ['0.gate', '0.up', '0.down'],
      ['1.q', '1.k', '1.v', '1.o'],
      ['1.gate', '1.up', '1.down'],
    ]);
  });

  it('composed layers (QLinear) dequantise one matrix at a time', () => {
    expect(dequantizationGroups([layer(0)], traceOf(['MatMul', 'QLinear'])).map((g) => g.length)).toEqual([1, 1, 1, 1, 1, 1, 1]);
  });
});

describe("the fused halves' scratch", () => {
  // 16 tokens; 4 heads over 2 KV heads of 16: q 64 wide, k and v 32; hidden 64, intermediate 128.
  const dims = { groups: 2, kvHeads: 2, batch: 1, halfHeadDim: 8, seq: 16, hidden: 64, intermediate: 128, vocab: 7 };
  const trace: Trace = { twin: dims, buffers: [], events: [], backend: 'cuda', precision: 'bf16-mixed' };
  const rows = (cols: number) => 16 * cols * 2; // bf16, each a multiple of 256 bytes here
  const workspace = (name: string, extra: { inputNames?: string[]; dropping?: string[]; mlp?: string } = {}) =>
    cudaRules(trace, 'bf16-mixed').workspace!(
      trace,
      {
        name,
        inputs: [],
        inputNames: extra.inputNames ?? [],
        attrs: {
          projections: Object.fromEntries((extra.dropping ?? []).map((role) => [role, { scaling: 2, dropout: { rate: 0.1, seed: 1 } }])),
          ...(extra.mlp ? { mlp: extra.mlp } : {}),
        },
      },
      dims,
    );

  it('LoRA dropout adds the dropped input of the widest dropping projection, forward and backward', () => {
    for (const name of [OPS.mlpHalf.name, OPS.mlpHalf.gradient.name]) {
      expect(workspace(name, { dropping: ['gate', 'up'] }) - workspace(name)).toBe(rows(64));
      expect(workspace(name, { dropping: ['gate', 'down'] }) - workspace(name)).toBe(rows(128));
    }
    for (const name of [OPS.attentionHalf.name, OPS.attentionHalf.gradient.name]) {
      expect(workspace(name, { dropping: ['q', 'v'] }) - workspace(name)).toBe(rows(64));
    }
  });

  it("q/k norms add q and k normed once more, forward and backward; the MLP's is unchanged", () => {
    const norms = { inputNames: ['h', 'qNormWeight', 'kNormWeight'] };
    expect(workspace(OPS.attentionHalf.name, norms) - workspace(OPS.attentionHalf.name)).toBe(rows(64) + rows(32));
    // Backward, also q's rope′ in a scratch of its own: without norms it writes over the attention output's gradient.
    expect(workspace(OPS.attentionHalf.gradient.name, norms) - workspace(OPS.attentionHalf.gradient.name)).toBe(2 * rows(64) + rows(32));
    expect(workspace(OPS.mlpHalf.name, { inputNames: ['h'] })).toBe(rows(64) + rows(128));
  });

  it("a plain MLP (GPT-2's) works in the gated one's forward scratch, and backward in one gradient of the activation where the gated holds three", () => {
    expect(workspace(OPS.mlpHalf.name, { mlp: 'plain' })).toBe(workspace(OPS.mlpHalf.name, { mlp: 'gated' }));
    expect(workspace(OPS.mlpHalf.gradient.name, { mlp: 'gated' })).toBe(3 * rows(128) + rows(64));
    expect(workspace(OPS.mlpHalf.gradient.name, { mlp: 'plain' })).toBe(rows(128) + rows(64));
  });
});

describe("a long row's MLP half, in tiles of rows (src/backend/mlpTiles.ts)", () => {
  // 2 × 16384 tokens of a 16384-wide MLP: 2^29 elements, tiles of 2^28 / 16384 = 16384 rows. hidden 64.
  const long = { groups: 2, kvHeads: 2, batch: 2, halfHeadDim: 8, seq: 16384, hidden: 64, intermediate: 16384, vocab: 7 };
  const short = { ...long, batch: 1, seq: 16 };
  const tile = (cols: number) => 16384 * cols * 2; // bf16
  // What the trace of the twin (untiled) holds: the MLP half's out [batch, seq, hidden], gate and up [batch·seq, intermediate].
  const mono = (...symbols: number[]) => ({ coef: 1, exps: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => (symbols.includes(i) ? 1 : 0)) });
  const [BATCH, SEQ, HIDDEN, INTERMEDIATE] = [2, 4, 5, 6];
  const traceWith = (inputNames: string[]): Trace => ({
    twin: long,
    buffers: [
      { shape: [mono(BATCH), mono(SEQ), mono(HIDDEN)], dtype: 'float32', category: 'activations', kernel: '', inputs: [] },
      ...[0, 1, 2].map((i) => ({
        shape: i === 0 ? [mono(BATCH), mono(SEQ), mono(HIDDEN)] : [mono(BATCH, SEQ), mono(INTERMEDIATE)],
        dtype: 'float32',
        category: 'activations' as const,
        kernel: OPS.mlpHalf.name,
        inputs: [0],
        phys: 'bf16',
      })),
    ],
    events: [{ kind: 'kernel', name: OPS.mlpHalf.name, inputs: [0], inputNames }],
    backend: 'cuda',
    precision: 'bf16-mixed',
  });
  const bytes = (trace: Trace, id: number, dims: typeof long) => cudaRules(trace, 'bf16-mixed').bytes(trace, id, dims);
  const workspace = (name: string, o: { lora?: boolean; mlp?: string; dora?: boolean } = {}, dims = long) => {
    const trace: Trace = { twin: dims, buffers: [], events: [], backend: 'cuda', precision: 'bf16-mixed' };
    const adapter = o.lora ? [{ shape: [], dtype: 'float32', category: 'adapter' as const, kernel: '', inputs: [] }] : [];
    trace.buffers.push(...adapter);
    return cudaRules(trace, 'bf16-mixed').workspace!(
      trace,
      {
        name,
        inputs: o.lora ? [0] : [],
        inputNames: ['h', ...(o.dora ? ['gateLoraA', 'gateLoraB', 'gateLoraMagnitude'] : [])],
        attrs: { mlp: o.mlp ?? 'gated', tileRows: 0, projections: {} },
      },
      dims,
    );
  };

  it('gate and up, traced untiled at the twin, are not made at a long row; the value is', () => {
    const trace = traceWith(['h', 'normWeight']);
    expect(bytes(trace, 2, long)).toBe(0);
    expect(bytes(trace, 3, long)).toBe(0);
    expect(bytes(trace, 1, long)).toBe(2 * 16384 * 64 * 2);
    expect(bytes(trace, 2, short)).toBe(16 * 16384 * 2);
  });

  it("a DoRA half's gate and up are made at any length (DoRA stays untiled)", () => {
    const trace = traceWith(['h', 'normWeight', 'gateLoraA', 'gateLoraB', 'gateLoraMagnitude']);
    expect(bytes(trace, 2, long)).toBe(2 * 16384 * 16384 * 2);
  });

  it("the scratch is a tile's: forward n, gate, up and the activation; backward gate and up made again with n, beside the untiled backward's", () => {
    expect(workspace(OPS.mlpHalf.name)).toBe(tile(64) + 3 * tile(16384));
    expect(workspace(OPS.mlpHalf.name, { mlp: 'plain' })).toBe(tile(64) + 2 * tile(16384));
    // da, dgate, dup; dn and n; gate and up
    expect(workspace(OPS.mlpHalf.gradient.name)).toBe(5 * tile(16384) + 2 * tile(64));
    expect(workspace(OPS.mlpHalf.gradient.name, { lora: true })).toBe(6 * tile(16384) + 2 * tile(64));
    // da (dup written over it), up
    expect(workspace(OPS.mlpHalf.gradient.name, { mlp: 'plain' })).toBe(2 * tile(16384) + 2 * tile(64));
  });

  it("counts a kernel's outputs beside its scratch: made first, though the trace tracks them once it returns", () => {
    const rows = (cols: number) => 16 * cols * 2;
    const kernel = {
      kind: 'kernel' as const,
      name: OPS.mlpHalf.gradient.name,
      inputs: [0],
      inputNames: ['h'],
      attrs: { mlp: 'gated', projections: {} },
    };
    const h = { shape: [mono(BATCH), mono(SEQ), mono(HIDDEN)], dtype: 'float32', category: 'activations' as const, kernel: '', inputs: [] };
    const dh = { ...h, kernel: OPS.mlpHalf.gradient.name, inputs: [0], phys: 'bf16' };
    const withOutput: Trace = {
      twin: short,
      buffers: [h, dh],
      events: [kernel, { kind: 'track', buffer: 1, fresh: true }],
      backend: 'cuda',
      precision: 'bf16-mixed',
    };
    const alone: Trace = { ...withOutput, events: [kernel] };
    const at = (t: Trace) => cudaRules(t, 'bf16-mixed').workspace!(t, t.events[0] as never, short);
    expect(at(alone)).toBe(3 * rows(16384) + rows(64));
    expect(at(withOutput)).toBe(at(alone) + rows(64)); // dh, [16, 64] bf16
  });

  it('a short row keeps the untiled scratch: gate and up are outputs the trace sees', () => {
    const rows = (cols: number) => 16 * cols * 2;
    expect(workspace(OPS.mlpHalf.name, {}, short)).toBe(rows(64) + rows(16384));
    expect(workspace(OPS.mlpHalf.gradient.name, {}, short)).toBe(3 * rows(16384) + rows(64));
  });
});

describe("the fused halves' DoRA scratch", () => {
  // 1024 tokens (the [N, slice] products outgrow the norm's chunk); q 64 wide, k and v 32; hidden 64, intermediate 128.
  const dims = { groups: 2, kvHeads: 2, batch: 1, halfHeadDim: 8, seq: 1024, hidden: 64, intermediate: 128, vocab: 7 };
  const trace: Trace = { twin: dims, buffers: [], events: [], backend: 'cuda', precision: 'bf16-mixed' };
  const rows = (cols: number) => 1024 * cols * 2; // bf16, each a multiple of 256 bytes here
  const workspace = (name: string, o: { dora?: string[]; dropping?: string[] } = {}, at = dims) =>
    cudaRules(trace, 'bf16-mixed').workspace!(
      trace,
      {
        name,
        inputs: [],
        inputNames: ['h', ...(o.dora ?? []).flatMap((role) => [`${role}LoraA`, `${role}LoraB`, `${role}LoraMagnitude`])],
        attrs: {
          projections: Object.fromEntries((o.dropping ?? []).map((role) => [role, { scaling: 2, dropout: { rate: 0.1, seed: 1 } }])),
        },
      },
      at,
    );
  const extra = (name: string, o: { dora?: string[]; dropping?: string[] }, at = dims) =>
    workspace(name, o, at) - workspace(name, { dropping: o.dropping }, at);

  it('forward without dropout: only the norm’s chunk of W + s·B·A, the largest weight’s (all of it, here)', () => {
    expect(extra(OPS.mlpHalf.name, { dora: ['gate', 'up', 'down'] })).toBe(128 * 64 * 2);
    expect(extra(OPS.attentionHalf.name, { dora: ['q', 'v'] })).toBe(64 * 64 * 2);
  });

  it('backward, and forward where the projection drops its input: [N, widest slice] (a fused projection’s slice, not all of it)', () => {
    // Backward also the magnitude gradient's f32 partial sums: a row of the widest slice per 128 tokens.
    const partial = (cols: number) => 8 * cols * 4;
    expect(extra(OPS.mlpHalf.gradient.name, { dora: ['gate', 'up', 'down'] })).toBe(rows(128) + partial(128));
    expect(extra(OPS.mlpHalf.gradient.name, { dora: ['gateUp', 'down'] })).toBe(rows(128) + partial(128));
    expect(extra(OPS.attentionHalf.gradient.name, { dora: ['qkv', 'o'] })).toBe(rows(64) + partial(64));
    expect(extra(OPS.attentionHalf.gradient.name, { dora: ['k', 'v'] })).toBe(rows(32) + partial(32));
    expect(extra(OPS.mlpHalf.name, { dora: ['gate', 'down'], dropping: ['gate'] })).toBe(rows(128));
    expect(extra(OPS.mlpHalf.name, { dora: ['gate', 'down'], dropping: ['down'] })).toBe(rows(64));
  });

  it("a weight over 2^24 values has its norm made in chunks of at most 2^24 (32 MiB bf16), whatever the weight's size", () => {
    const big = { ...dims, seq: 1, hidden: 8192, intermediate: 28672 };
    expect(extra(OPS.mlpHalf.name, { dora: ['gate', 'up', 'down'] }, big)).toBe(2 ** 24 * 2);
  });
});

describe('a checkpoint restored from host memory (a trace made off cuda)', () => {
  it('is stored as the buffer it was offloaded from: a GEMM result bf16 under bf16-mixed, a sum f32', () => {
    const dims = { groups: 2, kvHeads: 2, batch: 2, halfHeadDim: 8, seq: 3, hidden: 64, intermediate: 128, vocab: 7 };
    const axis = (symbol: number) => ({ coef: 1, exps: [0, 0, 0, 0, 0, 0, 0, 0].map((_, i) => +(i === symbol)) });
    const shape = [axis(2), axis(4), axis(5)]; // [batch, seq, hidden]
    const made = (kernel: string, inputs: number[]) => ({ shape, dtype: 'float32', category: 'activations' as const, kernel, inputs });
    const trace: Trace = {
      twin: dims,
      buffers: [made('BatchMatMul', []), made('Sum', []), made(RESTORED_CHECKPOINT, [0]), made(RESTORED_CHECKPOINT, [1])],
      events: [],
      backend: 'cpu',
      precision: 'fp32',
    };
    const bytes = (id: number) => cudaRules(trace, 'bf16-mixed').bytes(trace, id, dims);
    expect([0, 1, 2, 3].map(bytes)).toEqual([2 * 3 * 64 * 2, 2 * 3 * 64 * 4, 2 * 3 * 64 * 2, 2 * 3 * 64 * 4]);
  });
});

describe("the fused ops' stand-ins (a trace made off cuda)", () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });
  const ones = (shape: number[]) => tf.ones(shape);

  it("take the value's shape and each gradient's from the op's signature, and save what its gradient kernel reads", () => {
    withCudaFusedOps(() =>
      tf.tidy(() => {
        const x = ones([2, 3, 8]),
          w = ones([8]),
          b = ones([8]);
        // Zeros everywhere: the stand-ins ran, not the references (which give ones and non-zero gradients).
        const [dx, dw] = tf.grads((a: tf.Tensor, c: tf.Tensor) => rmsNorm(a, c, 1e-6).sum())([x, w]);
        expect([rmsNorm(x, w, 1e-6).shape, dx!.shape, dw!.shape]).toEqual([[2, 3, 8], [2, 3, 8], [8]]);
        expect([rmsNorm(x, w, 1e-6), dx!, dw!].map((t) => t.abs().max().dataSync()[0])).toEqual([0, 0, 0]);
        // LayerNorm's bias gradient is shaped like w (its `returns`: ['b', 'w']).
        const grads = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => layerNorm(a, c, d, 1e-5).sum())([x, w, b]);
        expect(grads.map((g) => g.shape)).toEqual([[2, 3, 8], [8], [8]]);
        // Cross-entropy's value is a scalar (valueShape null); the labels get no gradient kernel output (zeros).
        const labels = tf.tensor1d([1, 2], 'int32');
        const logits = ones([2, 5]);
        expect(crossEntropySum(logits, labels).shape).toEqual([]);
        expect(tf.grad((l: tf.Tensor) => crossEntropySum(l, labels))(logits).shape).toEqual([2, 5]);
      }),
    );
  });

  it('store each fused result as its signature says', () => {
    // [1024] f32 is 4096 bytes, bf16 2048 (both whole 256-byte units).
    const shape = [{ coef: 1024, exps: [] }];
    const input = { kernel: '', inputs: [], shape, dtype: 'float32', category: 'activations' };
    const op = (kernel: string, inputs: number[]) => ({ kernel, inputs, shape, dtype: 'float32', category: 'activations' });
    const trace = {
      twin: {},
      events: [],
      backend: 'cpu',
      precision: 'fp32',
      buffers: [
        { ...input, phys: 'bf16' },
        { ...input, phys: 'f32' },
        op(OPS.rmsNorm.name, [0, 1]), // like x: bf16
        op(OPS.rmsNorm.name, [1, 0]), // like x: f32
        op(OPS.loraDelta.name, [1, 0, 1, 1]), // like base (input 1): bf16
        op(OPS.crossEntropySum.name, [0, 1]), // f32
        op(OPS.attention.name, [1, 1, 1, 1]), // the GEMM type: bf16 under bf16-mixed
        op(OPS.crossEntropySum.gradient.name, [1, 0, 1]), // like logits (input 1): bf16
      ],
    } as unknown as Trace;
    const rules = cudaRules(trace, 'bf16-mixed');
    expect([2, 3, 4, 5, 6, 7].map((id) => rules.bytes(trace, id, trace.twin))).toEqual([2048, 4096, 2048, 4096, 2048, 2048]);
  });
});
