/**
 * `TTAttention` (src/ops/attention.ts) on cuda: flash attention (kernels/src/flash_attention_*.cu),
 * softmax((q·kᵀ)·scale + mask)·v over grouped KV heads without ever making an [sq, sk] tensor.
 *
 * How the backward pass gets what it needs: the kernel returns two outputs, the op's value
 * `out` and the rows' log-sum-exp `lse` ([b, heads, sq], f32), and the gradient saves both
 * (tfjs' `outputsToSave`), so the backward recomputes P = exp(S − lse) tile by tile and never
 * runs the forward again. The op's reference returns one tensor; src/ops/dispatch.ts returns
 * a fused kernel's first output and disposes the rest (OPS.attention.outputs says which), so
 * callers see the same op on every backend. Exactly packed rows' example starts (int32 [b, sq])
 * come back as a third output sharing the input's data, so the gradient saves them only where given. (The alternatives were worse: recomputing lse in
 * the gradient costs a second forward-sized pass, and a separate "attention with lse" op
 * would put a cuda-only name into the vocabulary.) Under activation checkpointing the block's
 * recomputation runs this forward once more and the gradient then uses that run's out and lse:
 * attention runs forward twice per step (as every op of a checkpointed block does), never three times.
 *
 * Both passes are the flash attention primitives (../primitives/attention.ts), recorded and run
 * through runPrimitives on the packed [b, heads, s, d] tensors tfjs holds; the fused layers use
 * the same primitives on strided views.
 *
 * Types: q, k, v, dy and the key mask may each be stored in any physical type (the key mask may
 * be bool, int32 or float). bf16 q, k, v with head dims 32/64/80/96/128/256 run on tensor cores
 * (bf16 products, f32 accumulation and softmax; the list is kernels/src/flash_attention.cuh's
 * MmaHeadDims); everything else on the SIMT kernels in f32.
 * `out` is stored like the inputs (bf16 when q/k/v are bf16, see floatPhys); the gradients
 * follow the GEMM rule the previous (materialising) kernel had: bf16 under bf16-mixed, else f32.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { defineKernel, floatPhys, gemmPhys, input, reshapeRef, runPrimitives, size, withTemps } from '../kernelUtils.js';
import {
  attentionBackwardWorkspaceBytes,
  flashAttentionBackward,
  flashAttentionForward,
  packedStrides,
  type AttentionProblem,
  type AttentionView,
} from '../primitives/attention.js';

export const ATTENTION = OPS.attention.name;
const ATTENTION_GRAD = OPS.attention.gradient.name;
const MAX_HEAD_DIM = 256; // kernels/src/flash_attention.cuh kMaxHeadDim

/** Shapes and attributes checked once, as the primitives take them. */
function problemOf(q: TensorRef, k: TensorRef, v: TensorRef, keyMask: TensorRef, attrs: Record<string, unknown>): AttentionProblem {
  if (q.shape.length !== 4 || k.shape.length !== 4) throw new Error('q must be [b, heads, sq, d] and k, v [b, kvHeads, sk, d]');
  const [b, heads, sq, d] = q.shape as [number, number, number, number];
  const [kb, kvHeads, sk, kd] = k.shape as [number, number, number, number];
  if (kb !== b || kd !== d || v.shape.join() !== k.shape.join()) {
    throw new Error(`k [${k.shape}] and v [${v.shape}] must both be [${b}, kvHeads, sk, ${d}] for q [${q.shape}]`);
  }
  if (sk === 0) throw new Error('attention needs at least one key (sk = 0)');
  if (heads % kvHeads !== 0) throw new Error(`${heads} query heads do not group over ${kvHeads} KV heads`);
  if (d > MAX_HEAD_DIM) throw new Error(`head dimension ${d} exceeds the ${MAX_HEAD_DIM} the flash kernels support`);
  if (keyMask.shape.length !== 2 || keyMask.shape[0] !== b || keyMask.shape[1] !== sk) {
    throw new Error(`keyMask [${keyMask.shape}] must be [${b}, ${sk}] (batch, keys)`);
  }
  const [q0, k0, v0] = [q, k, v].map((t) => t.dtype);
  if (q0 !== 'float32' || k0 !== 'float32' || v0 !== 'float32') throw new Error('q, k and v must be float32 tensors');
  const scale = Number(attrs.scale);
  const window = Number(attrs.window ?? 0) || 0,
    queryOffset = Number(attrs.queryOffset ?? 0) || 0;
  if (!Number.isFinite(scale)) throw new Error(`scale must be a finite number, got ${String(attrs.scale)}`);
  if (!Number.isInteger(window) || window < 0) throw new Error(`window must be a whole number ≥ 0 (0 = none), got ${window}`);
  if (!Number.isInteger(queryOffset)) throw new Error(`queryOffset must be a whole number, got ${queryOffset}`);
  return { batch: b, heads, kvHeads, sq, sk, headDim: d, scale, causal: Boolean(attrs.causal), window, queryOffset };
}

/**
 * The example starts of exactly packed rows (the op's optional `exampleStarts`, int32 [b, sq]) as
 * the primitives take them: a device pointer, or 0 when absent (no example boundaries).
 */
export function exampleStartsOf(backend: CudaBackend, inputs: Parameters<typeof input>[0], p: AttentionProblem): number {
  const t = inputs.exampleStarts as TensorRef | undefined;
  if (!t) return 0;
  if (t.shape.join() !== [p.batch, p.sq].join() || t.dtype !== 'int32' || backend.phys(t) !== 'i32')
    throw new Error(`exampleStarts must be int32 [${p.batch}, ${p.sq}] (batch, queries), got ${t.dtype} [${t.shape}]`);
  if (p.sq !== p.sk || p.queryOffset !== 0)
    throw new Error(`exampleStarts (packed rows) need as many keys as queries and no KV cache, not sq ${p.sq}, sk ${p.sk}`);
  return backend.ptr(t);
}

/** A packed [b, heads, rows, d] tensor as the primitives' view. */
function packed(backend: CudaBackend, t: TensorRef): AttentionView {
  const [, heads, rows, d] = t.shape as [number, number, number, number];
  return { ptr: backend.ptr(t), dtype: backend.code(t), strides: packedStrides(heads, rows, d) };
}

/** What the forward writes and the backward reads again, as the primitives take it: q, k, v, the key mask, the example starts, out and lse. */
function forwardArgs(
  backend: CudaBackend,
  p: AttentionProblem,
  t: Record<'q' | 'k' | 'v' | 'keyMask' | 'out' | 'lse', TensorRef>,
  exampleStarts: number,
) {
  return {
    ...p,
    q: packed(backend, t.q),
    k: packed(backend, t.k),
    v: packed(backend, t.v),
    keyMask: backend.ptr(t.keyMask),
    maskDtype: backend.code(t.keyMask),
    exampleStarts,
    out: packed(backend, t.out),
    lse: backend.ptr(t.lse),
  };
}

export const attentionKernels: tf.KernelConfig[] = [
  defineKernel(ATTENTION, ({ inputs, backend, attrs }) => {
    const q = input(inputs, 'q'),
      k = input(inputs, 'k'),
      v = input(inputs, 'v'),
      keyMask = input(inputs, 'keyMask');
    const p = problemOf(q, k, v, keyMask, attrs);
    const starts = exampleStartsOf(backend, inputs, p);
    const out = backend.makeOutput(q.shape, 'float32', floatPhys(backend, q, k, v));
    const lse = backend.makeOutput([p.batch, p.heads, p.sq], 'float32', 'f32');
    if (size(q.shape) > 0) {
      runPrimitives(backend, (prog) => flashAttentionForward(prog, forwardArgs(backend, p, { q, k, v, keyMask, out, lse }, starts)));
    }
    const exampleStarts = inputs.exampleStarts as TensorRef | undefined;
    return exampleStarts ? [out, lse, reshapeRef(backend, exampleStarts, exampleStarts.shape)] : [out, lse];
  }),
  defineKernel(ATTENTION_GRAD, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy'),
      q = input(inputs, 'q'),
      k = input(inputs, 'k'),
      v = input(inputs, 'v');
    const keyMask = input(inputs, 'keyMask'),
      out = input(inputs, 'out'),
      lse = input(inputs, 'lse');
    const p = problemOf(q, k, v, keyMask, attrs);
    const starts = exampleStartsOf(backend, inputs, p);
    if (dy.shape.join() !== q.shape.join() || out.shape.join() !== q.shape.join()) {
      throw new Error(`dy [${dy.shape}] and out [${out.shape}] must have q's shape [${q.shape}]`);
    }
    if (lse.shape.join() !== [p.batch, p.heads, p.sq].join() || backend.phys(lse) !== 'f32') {
      throw new Error(`lse must be the forward's f32 [${p.batch}, ${p.heads}, ${p.sq}]`);
    }
    const phys = gemmPhys(backend); // the gradients' storage: the GEMM rule of the policy
    const dq = backend.makeOutput(q.shape, 'float32', phys);
    const dk = backend.makeOutput(k.shape, 'float32', phys);
    const dv = backend.makeOutput(v.shape, 'float32', phys);
    if (size(k.shape) > 0) {
      withTemps(backend, (temps) => {
        const dqView = packed(backend, dq);
        const workspaceBytes = attentionBackwardWorkspaceBytes({ ...p, dq: dqView });
        const workspace = backend.makeOutput([workspaceBytes], 'bool', 'u8'); // the pool aligns to 256 bytes
        temps.push(workspace);
        runPrimitives(backend, (prog) =>
          flashAttentionBackward(prog, {
            ...forwardArgs(backend, p, { q, k, v, keyMask, out, lse }, starts),
            dOut: packed(backend, dy),
            dq: dqView,
            dk: packed(backend, dk),
            dv: packed(backend, dv),
            workspace: backend.ptr(workspace),
            workspaceBytes,
          }),
        );
      });
    }
    return [dq, dk, dv];
  }),
];

/** Used only when the cuda kernel ran; off cuda the reference's own autograd applies. */
export const attentionGradient: tf.GradConfig = {
  kernelName: ATTENTION,
  inputsToSave: ['q', 'k', 'v', 'keyMask'],
  // out and lse: the backward recomputes P from them; and the example starts where given (the
  // forward returns them as a third output: tfjs would fail saving an absent input).
  outputsToSave: [true, true, true],
  gradFunc: (dy, saved, attrs) => {
    const [q, k, v, keyMask, out, lse, exampleStarts] = saved as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor?,
    ];
    const g = Array.isArray(dy) ? dy[0]! : dy; // the lse output's incoming gradient is zeros: nothing uses lse
    const inputs = { dy: g, q, k, v, keyMask, ...(exampleStarts ? { exampleStarts } : {}), out, lse };
    const [dq, dk, dv] = tf.engine().runKernel(ATTENTION_GRAD, inputs as never, attrs as never) as tf.Tensor[];
    return {
      q: () => dq!,
      k: () => dk!,
      v: () => dv!,
      keyMask: () => tf.zerosLike(keyMask!),
      ...(exampleStarts ? { exampleStarts: () => tf.zerosLike(exampleStarts) } : {}),
    };
  },
};
