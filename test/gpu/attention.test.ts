/**
 * Flash attention (kernels/src/flash_attention_*.cu behind TTAttention) against the reference
 * op's autograd on the CPU backend: the output and dq/dk/dv over causal and bidirectional
 * attention, grouped KV heads (groups 1, 2, 4, 7), sliding windows shorter and longer than the
 * sequence, padded keys (right padding, left padding, holes; fully padded rows, whose softmax
 * the reference makes uniform), queries after a KV cache (sq ≠ sk, queryOffset), odd lengths
 * that cross the kernels' 32/64-row tiles, head dims 8, 16, 32, 64, 96, 128, 256, key masks
 * stored int32, bool and float32, bf16-stored inputs and bf16 gradients (bf16-mixed). f32
 * within 1e-4 relative (max |Δ| / max |ref|), bf16 within bf16 rounding. bf16 q, k, v with head
 * dims 32/64/80/96/128/256 run the tensor-core kernels (flash_attention_mma_*.cu; the rule is
 * flash_attention.cuh's MmaHeadDims, and the CPU simulator, kernels/dev/sim, checks that its
 * "mma" cases take that engine): their cases cover head dims 64, 80, 128 and 256, GQA 1, 2 and
 * 4, causal and bidirectional, windows, padding, sq ≠ sk and odd lengths. On a compute capability
 * 9.0 device (an H100) the d 64 and 128 cases run Hopper's warp-specialised kernels
 * (flash_attention_tma_forward.cu, flash_attention_tma_backward.cu; TYPETUNE_ATTENTION_ENGINE=mma, read once per process, keeps
 * the sm_80 kernels, so a run with it checks those there). The primitives themselves run once on strided views (a fused QKV buffer, out and
 * dOut in [b, s, h, d]). Also: the forward and backward never hold an [b, heads, sq, sk] f32
 * tensor's worth of memory, and the op leaves no tensor behind (its lse output is freed).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, type Tensor } from '../../src/backend/tf.js';
import { attention } from '../../src/ops/attention.js';
import { OPS } from '../../src/ops/names.js';
import { activeCudaBackend, cudaMemory, physicalDtype, resetCudaPeakMemory, storeFrozenWeight } from '../../src/backend/cuda/api.js';
import type { TensorRef } from '../../src/backend/cuda/backend.js';
import { runPrimitives } from '../../src/backend/cuda/kernelUtils.js';
import {
  attentionBackwardWorkspaceBytes,
  flashAttentionBackward,
  flashAttentionForward,
  packedStrides,
  type AttentionView,
} from '../../src/backend/cuda/primitives/attention.js';
import { type Case, forwardAndGradients, inputs, keyMask, options } from './attentionCases.js';
import { EMULATED, onBoth, relErr, useCuda } from './cuda.js';

beforeAll(async () => {
  await useCuda();
});

const cases: Array<[string, Case]> = [
  [
    'causal, 1 query head per KV head, d 64, odd length across tiles',
    { b: 2, heads: 3, kvHeads: 3, sq: 131, sk: 131, d: 64, causal: true, lengths: [131, 100] },
  ],
  [
    'bidirectional, groups of 2, d 96, bool mask',
    { b: 2, heads: 4, kvHeads: 2, sq: 77, sk: 77, d: 96, causal: false, lengths: [77, 50], maskDtype: 'bool' },
  ],
  [
    'causal, groups of 4, d 128, window 16 < length, float mask',
    { b: 1, heads: 8, kvHeads: 2, sq: 100, sk: 100, d: 128, causal: true, window: 16, lengths: [90], maskDtype: 'float32' },
  ],
  [
    'causal, groups of 7 (MQA), tiny d 8, window 40 > length',
    { b: 2, heads: 7, kvHeads: 1, sq: 19, sk: 19, d: 8, causal: true, window: 40, lengths: [19, 11] },
  ],
  [
    'KV-cached decoding: 5 queries after 65 cached keys (queryOffset), d 64',
    { b: 2, heads: 4, kvHeads: 2, sq: 5, sk: 70, d: 64, causal: true, queryOffset: 65, lengths: [70, 68] },
  ],
  [
    'bidirectional after a cache with a window, d 32',
    { b: 1, heads: 2, kvHeads: 1, sq: 9, sk: 40, d: 32, causal: false, window: 12, queryOffset: 31, lengths: [37] },
  ],
  ['fully masked rows: an all-padding example', { b: 2, heads: 2, kvHeads: 1, sq: 70, sk: 70, d: 16, causal: true, lengths: [70, 0] }],
  [
    'fully masked rows: a window that ends before the first key',
    { b: 2, heads: 2, kvHeads: 2, sq: 4, sk: 10, d: 16, causal: true, window: 5, queryOffset: 12, lengths: [10, 3] },
  ],
  [
    'a key mask with holes, and left padding (early rows fully masked beside seeing rows in one tile)',
    { b: 2, heads: 2, kvHeads: 1, sq: 70, sk: 70, d: 16, causal: true, lengths: [], visible: (b, j) => (b === 0 ? j % 3 !== 1 : j >= 5) },
  ],
  ['causal, d 256, groups of 2', { b: 1, heads: 2, kvHeads: 1, sq: 40, sk: 40, d: 256, causal: true, lengths: [33] }],
  // Exactly packed rows: a query sees its own example only (examples shorter and longer than a tile).
  [
    'packed rows, groups of 2, d 64: examples of 5, 70, 1, 40 and 30 beside one of 131 with padding',
    { b: 2, heads: 4, kvHeads: 2, sq: 146, sk: 146, d: 64, causal: true, lengths: [146, 131], examples: [[5, 70, 1, 40, 30], [131]] },
  ],
  [
    'packed rows, MQA (groups of 4), d 32, window 9 across example boundaries',
    { b: 1, heads: 4, kvHeads: 1, sq: 100, sk: 100, d: 32, causal: true, window: 9, lengths: [97], examples: [[3, 64, 20, 10]] },
  ],
];

const NAMES = ['out', 'dq', 'dk', 'dv'];

describe('flash attention equals the reference op and its autograd', () => {
  it('runs the fused kernel on cuda', () => {
    expect(tf.getKernel(OPS.attention.name, 'cuda')).toBeDefined();
    expect(tf.getKernel(OPS.attention.gradient.name, 'cuda')).toBeDefined();
  });

  it.each(cases)('%s (f32, ≤ 1e-4)', async (_name, c) => {
    const { cpu, cuda } = await onBoth(() => forwardAndGradients(c));
    cpu.forEach((ref, i) => {
      expect(cuda[i]!.shape, NAMES[i]).toEqual(ref.shape);
      expect(relErr(cuda[i]!.data, ref.data), `${NAMES[i]} rel. error`).toBeLessThanOrEqual(1e-4);
    });
  });

  it('bf16-stored q, k, v: bf16 output within bf16 rounding, f32 gradients within a few bf16 roundings', async () => {
    const c: Case = { b: 2, heads: 4, kvHeads: 2, sq: 67, sk: 67, d: 64, causal: true, lengths: [67, 40] };
    const { cpu, cuda } = await onBoth(() => forwardAndGradients(c, true));
    // Tensor cores (d 64): P is rounded to bf16 for P·V besides the output's own rounding.
    expect(relErr(cuda[0]!.data, cpu[0]!.data), 'out').toBeLessThanOrEqual(2 ** -7);
    // The gradients' row term Δ = rowsum(dO ⊙ out) reads the bf16-stored output.
    for (let i = 1; i < 4; i++) expect(relErr(cuda[i]!.data, cpu[i]!.data), NAMES[i]).toBeLessThanOrEqual(2 ** -6);
  });

  it('bf16-mixed: the gradients are stored bf16 (dq summed in f32, then rounded), within bf16 rounding', async () => {
    const c: Case = { b: 1, heads: 4, kvHeads: 1, sq: 70, sk: 70, d: 32, causal: true, lengths: [61] };
    await tf.setBackend('cuda');
    activeCudaBackend()!.setPrecisionPolicy('bf16-mixed');
    try {
      const { cpu, cuda } = await onBoth(() => {
        const results = forwardAndGradients(c, true);
        if (tf.getBackend() === 'cuda') results.slice(1).forEach((g, i) => expect(physicalDtype(g), NAMES[i + 1]).toBe('bf16'));
        return results;
      });
      for (let i = 0; i < 4; i++) expect(relErr(cuda[i]!.data, cpu[i]!.data), NAMES[i]).toBeLessThanOrEqual(2 ** -6);
    } finally {
      activeCudaBackend()!.setPrecisionPolicy('fp32');
    }
  });

  it('bad input fails with a message naming the kernel and what is valid', async () => {
    await tf.setBackend('cuda');
    const q = tf.zeros([1, 3, 4, 8]),
      k = tf.zeros([1, 2, 4, 8]),
      mask = tf.ones([1, 4], 'int32');
    expect(() => attention(q, k, k, mask, { scale: 1, causal: true })).toThrow(/TTAttention.*3 query heads do not group over 2 KV heads/);
    const q2 = tf.zeros([1, 2, 4, 8]);
    expect(() => attention(q2, k, k, tf.ones([1, 5], 'int32'), { scale: 1, causal: true })).toThrow(/keyMask \[1,5\] must be \[1, 4\]/);
    tf.dispose([q, k, mask, q2]);
  });
});

const mmaCases: Array<[string, Case]> = [
  [
    'd 64, one query head per KV head, causal, odd length 77, right padding',
    { b: 2, heads: 2, kvHeads: 2, sq: 77, sk: 77, d: 64, causal: true, lengths: [77, 50] },
  ],
  [
    'd 128, groups of 4, bidirectional, length 130 across key tiles',
    { b: 1, heads: 8, kvHeads: 2, sq: 130, sk: 130, d: 128, causal: false, lengths: [130] },
  ],
  [
    'd 64, groups of 4, causal, window 33, length 130, padding',
    { b: 1, heads: 4, kvHeads: 1, sq: 130, sk: 130, d: 64, causal: true, window: 33, lengths: [120] },
  ],
  [
    'd 128, 77 queries after 53 cached keys (sq ≠ sk), groups of 4',
    { b: 2, heads: 4, kvHeads: 1, sq: 77, sk: 130, d: 128, causal: true, queryOffset: 53, lengths: [130, 100] },
  ],
  [
    'd 64, bidirectional, 30 queries over 77 keys with a window',
    { b: 1, heads: 2, kvHeads: 1, sq: 30, sk: 77, d: 64, causal: false, window: 40, queryOffset: 47, lengths: [77] },
  ],
  ['d 64, a fully masked example beside a full one', { b: 2, heads: 4, kvHeads: 1, sq: 70, sk: 70, d: 64, causal: true, lengths: [70, 0] }],
  [
    'd 128, key-mask holes and left padding, bool mask',
    {
      b: 2,
      heads: 2,
      kvHeads: 1,
      sq: 77,
      sk: 77,
      d: 128,
      causal: true,
      lengths: [],
      visible: (b, j) => (b === 0 ? j % 3 !== 1 : j >= 9),
      maskDtype: 'bool',
    },
  ],
  // d 80 (Phi-2, StableLM) and d 256 (Gemma): d 256 runs 32-key forward tiles and the backward
  // in two column halves (flash_attention_mma.cuh MmaTiles).
  [
    'd 80, groups of 2, causal, odd length 131, right padding',
    { b: 2, heads: 4, kvHeads: 2, sq: 131, sk: 131, d: 80, causal: true, lengths: [131, 100] },
  ],
  [
    'd 80, 77 queries after 53 cached keys, window 40, float mask',
    { b: 1, heads: 4, kvHeads: 1, sq: 77, sk: 130, d: 80, causal: true, window: 40, queryOffset: 53, lengths: [120], maskDtype: 'float32' },
  ],
  [
    'd 256, groups of 2, causal, odd length 99, right padding',
    { b: 2, heads: 4, kvHeads: 2, sq: 99, sk: 99, d: 256, causal: true, lengths: [99, 70] },
  ],
  [
    'd 256, bidirectional, window 16, holes and left padding',
    {
      b: 2,
      heads: 2,
      kvHeads: 1,
      sq: 70,
      sk: 70,
      d: 256,
      causal: false,
      window: 16,
      lengths: [],
      visible: (b, j) => (b === 0 ? j % 3 !== 1 : j >= 5),
    },
  ],
  [
    'd 256, a fully masked example beside a full one',
    { b: 2, heads: 2, kvHeads: 1, sq: 40, sk: 40, d: 256, causal: true, lengths: [40, 0] },
  ],
  [
    'd 128, packed rows, groups of 2: examples of 7, 100, 16 and 60 (tiles skipped and partly covered), padding',
    {
      b: 2,
      heads: 4,
      kvHeads: 2,
      sq: 190,
      sk: 190,
      d: 128,
      causal: true,
      lengths: [183, 190],
      examples: [
        [7, 100, 16, 60],
        [64, 64, 62],
      ],
    },
  ],
  // Rows spanning several of the backward's 128-key blocks: tiles every query sees, diagonal
  // tiles and skipped ones, per warp and per warpgroup.
  [
    'd 64, groups of 2, causal, 300 rows, right padding',
    { b: 1, heads: 4, kvHeads: 2, sq: 300, sk: 300, d: 64, causal: true, lengths: [290] },
  ],
  [
    'd 128, causal, 300 rows, key-mask holes',
    { b: 1, heads: 2, kvHeads: 1, sq: 300, sk: 300, d: 128, causal: true, lengths: [], visible: (_b, j) => j % 3 !== 1 },
  ],
  [
    'd 64, packed rows, groups of 4, window 33 across boundaries',
    { b: 1, heads: 4, kvHeads: 1, sq: 130, sk: 130, d: 64, causal: true, window: 33, lengths: [130], examples: [[50, 1, 79]] },
  ],
];

describe('flash attention on tensor cores (bf16 q, k, v; head dims 32, 64, 80, 96, 128, 256)', () => {
  // P (and dS) are rounded to bf16 for their products, the output to bf16 storage.
  it.each(mmaCases)('%s', async (_name, c) => {
    const { cpu, cuda } = await onBoth(() => forwardAndGradients(c, true));
    expect(relErr(cuda[0]!.data, cpu[0]!.data), 'out').toBeLessThanOrEqual(2 ** -7);
    for (let i = 1; i < 4; i++) expect(relErr(cuda[i]!.data, cpu[i]!.data), NAMES[i]).toBeLessThanOrEqual(2 ** -6);
  });

  it.each([128, 256])('bf16-mixed: bf16 gradients (dq summed in f32), d %i, groups of 4', async (d) => {
    const c: Case = { b: 1, heads: 4, kvHeads: 1, sq: 130, sk: 130, d, causal: true, lengths: [111] };
    await tf.setBackend('cuda');
    activeCudaBackend()!.setPrecisionPolicy('bf16-mixed');
    try {
      const { cpu, cuda } = await onBoth(() => forwardAndGradients(c, true));
      for (let i = 0; i < 4; i++) expect(relErr(cuda[i]!.data, cpu[i]!.data), NAMES[i]).toBeLessThanOrEqual(2 ** -6);
    } finally {
      activeCudaBackend()!.setPrecisionPolicy('fp32');
    }
  });
});

describe('the flash attention primitives on strided views', () => {
  // q, k, v as column blocks of one [b, s, (heads + 2·kvHeads)·d] buffer (a fused QKV
  // projection's output), out and dOut [b, s, heads, d], dq/dk/dv into one fused f32 buffer.
  const c: Case = { b: 2, heads: 4, kvHeads: 2, sq: 77, sk: 77, d: 64, causal: true, lengths: [77, 60] };
  const width = (c.heads + 2 * c.kvHeads) * c.d;

  /** [b, h, s, d] tensors → one [b, s, Σh·d] tensor (the fused layout). */
  const fuse = (ts: Tensor[]) =>
    tf.concat(
      ts.map((t) => tf.transpose(t, [0, 2, 1, 3]).reshape([c.b, c.sq, -1])),
      2,
    );

  it.each([
    ['bf16 q, k, v (tensor cores)', true],
    ['f32 q, k, v (SIMT)', false],
  ] as const)('%s', async (_name, bf16) => {
    const [q, k, v, dy] = inputs(c, true);
    const mask = keyMask(c);
    await tf.setBackend('cpu');
    const ref = tf.tidy(() => {
      const f = (q: Tensor, k: Tensor, v: Tensor) => tf.sum(tf.mul(attention(q, k, v, mask, options(c)), dy!));
      const out = attention(q!, k!, v!, mask, options(c));
      return {
        out: tf.transpose(out, [0, 2, 1, 3]).dataSync().slice(),
        grads: fuse(tf.grads(f)([q!, k!, v!]))
          .dataSync()
          .slice(),
      };
    });
    await tf.setBackend('cuda');
    const backend = activeCudaBackend()!;
    const [qkv, out, dOut, lse, grads, maskCuda] = tf.tidy(() => {
      const stored = (t: Tensor) => (bf16 ? storeFrozenWeight(t) : t);
      return [
        stored(fuse([q!, k!, v!])),
        stored(tf.zeros([c.b, c.sq, c.heads, c.d])),
        stored(tf.transpose(dy!, [0, 2, 1, 3])),
        tf.zeros([c.b, c.heads, c.sq]),
        tf.zeros([c.b, c.sq, width]),
        keyMask(c),
      ];
    }) as Tensor[];
    const ptr = (t: Tensor) => backend.ptr(t as unknown as TensorRef),
      code = (t: Tensor) => backend.code(t as unknown as TensorRef);
    const fused = (t: Tensor, column: number): AttentionView => ({
      ptr: ptr(t) + column * c.d * (code(t) === 1 ? 2 : 4),
      dtype: code(t),
      strides: [c.sq * width, c.d, width],
    });
    const bshd = (t: Tensor): AttentionView => ({ ptr: ptr(t), dtype: code(t), strides: [c.sq * c.heads * c.d, c.d, c.heads * c.d] });
    const problem = {
      batch: c.b,
      heads: c.heads,
      kvHeads: c.kvHeads,
      sq: c.sq,
      sk: c.sk,
      headDim: c.d,
      scale: 1 / Math.sqrt(c.d),
      causal: c.causal,
      window: 0,
      queryOffset: 0,
    };
    const views = {
      q: fused(qkv!, 0),
      k: fused(qkv!, c.heads),
      v: fused(qkv!, c.heads + c.kvHeads),
      keyMask: ptr(maskCuda!),
      maskDtype: code(maskCuda!),
      exampleStarts: 0,
    };
    const gradViews = { dq: fused(grads!, 0), dk: fused(grads!, c.heads), dv: fused(grads!, c.heads + c.kvHeads) };
    expect(packedStrides(c.heads, c.sq, c.d)).toEqual([c.heads * c.sq * c.d, c.sq * c.d, c.d]);
    const workspaceBytes = attentionBackwardWorkspaceBytes({ ...problem, dq: gradViews.dq });
    const workspace = tf.zeros([Math.ceil(workspaceBytes / 4)]);
    runPrimitives(backend, (p) => {
      flashAttentionForward(p, { ...problem, ...views, out: bshd(out!), lse: ptr(lse!) });
      flashAttentionBackward(p, {
        ...problem,
        ...views,
        ...gradViews,
        out: bshd(out!),
        dOut: bshd(dOut!),
        lse: ptr(lse!),
        workspace: ptr(workspace),
        workspaceBytes,
      });
    });
    expect(relErr(out!.dataSync(), ref.out), 'out').toBeLessThanOrEqual(bf16 ? 2 ** -7 : 1e-4);
    expect(relErr(grads!.dataSync(), ref.grads), 'dq | dk | dv').toBeLessThanOrEqual(bf16 ? 2 ** -6 : 1e-4);
    tf.dispose([q!, k!, v!, dy!, mask, qkv!, out!, dOut!, lse!, grads!, maskCuda!, workspace]);
  });
});

describe('flash attention memory', () => {
  // Big enough on a GPU for the [b, heads, sq, sk] f32 scores (512 MiB) to dwarf q, k, v and
  // their gradients; small in the CPU emulation.
  const c: Case = EMULATED
    ? { b: 1, heads: 2, kvHeads: 1, sq: 512, sk: 512, d: 8, causal: true, lengths: [400] }
    : { b: 2, heads: 16, kvHeads: 4, sq: 2048, sk: 2048, d: 64, causal: true, lengths: [2048, 1500] };

  it('forward + backward peak stays below one [b, heads, sq, sk] f32 tensor', async () => {
    await tf.setBackend('cuda');
    const scoresBytes = c.b * c.heads * c.sq * c.sk * 4;
    const [q, k, v, w] = inputs(c, false) as [Tensor, Tensor, Tensor, Tensor];
    const mask = keyMask(c);
    const before = cudaMemory()!.inUse;
    resetCudaPeakMemory();
    tf.tidy(() => {
      const f = (q: Tensor, k: Tensor, v: Tensor) => tf.sum(tf.mul(attention(q, k, v, mask, options(c)), w));
      const grads = tf.grads(f)([q, k, v]);
      grads.forEach((g) => g.dataSync()); // wait for the device
    });
    const extra = cudaMemory()!.peak - before;
    // out, lse, dy, dq (+ its f32 sum), dk, dv and small scratch: a few q-sized tensors.
    expect(extra).toBeGreaterThan(0);
    expect(extra, `peak above the inputs: ${extra} bytes; scores would be ${scoresBytes}`).toBeLessThan(scoresBytes / 2);
    tf.dispose([q, k, v, w, mask]);
  });

  it('the op frees the log-sum-exp output it does not return', async () => {
    await tf.setBackend('cuda');
    const small: Case = { b: 1, heads: 2, kvHeads: 1, sq: 5, sk: 5, d: 8, causal: true, lengths: [5] };
    const [q, k, v, w] = inputs(small, false) as [Tensor, Tensor, Tensor, Tensor];
    const mask = keyMask(small);
    const tensors = tf.memory().numTensors;
    const out = attention(q, k, v, mask, options(small));
    expect(tf.memory().numTensors).toBe(tensors + 1);
    tf.dispose([out, q, k, v, w, mask]);
  });
});
