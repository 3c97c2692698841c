/**
 * `TTAttention` (src/ops/attention.ts) on cuda: the reference's exact computation —
 * softmax((q·kᵀ)·scale + mask)·v over grouped KV heads — but its gradient recomputes the
 * probabilities instead of keeping them. tfjs' autograd of the reference keeps the scores,
 * the scaled and masked scores and the probabilities of every layer ([b, heads, sq, sk] each,
 * ~2 GiB per Llama-1B layer at 8×1024 tokens); this kernel keeps only q, k, v and the key
 * mask, so a step without activation checkpointing fits where the reference runs out of
 * memory. The backward pass, with P recomputed and G = groups·sq query rows per KV head:
 *   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = dP⊙P − rowsum(dP⊙P)⊙P  (tfjs' softmax gradient),
 *   dQ = (dS·scale)·K,  dK = (dS·scale)ᵀ·Q.
 * A flash-attention kernel (no [sq, sk] tensor at all) is the next step; this one is built
 * from the backend's GEMM, elementwise and softmax kernels.
 */
import { tf } from '../../tf.js';
import { OPS } from '../../../ops/names.js';
import { DTYPE } from '../addon.js';
import type { CudaBackend, TensorRef } from '../backend.js';
import { convert, defineKernel, floatPhys, input, reshapeRef, size } from '../kernel_utils.js';
import { binaryOp } from './binary.js';
import { matMulOp } from './matmul.js';
import { reduceOp } from './reduce.js';

export const ATTENTION = OPS.attention.name;
const ATTENTION_GRAD = OPS.attention.gradient.name;
const MASKED = -1e30;

interface Opts { scale: number; causal: boolean; window: number; queryOffset: number }

function optsOf(attrs: Record<string, unknown>): Opts {
  return {
    scale: Number(attrs.scale), causal: Boolean(attrs.causal), window: Number(attrs.window ?? 0) || 0,
    queryOffset: Number(attrs.queryOffset ?? 0) || 0,
  };
}

/** Work in one kernel call: every intermediate is freed when the call ends. */
class Scope {
  private readonly temps: TensorRef[] = [];
  constructor(readonly backend: CudaBackend) {}
  keep<T extends TensorRef>(t: T): T { this.temps.push(t); return t; }
  scalar(v: number): TensorRef { return this.keep(this.backend.makeTensorInfo([], 'float32', new Float32Array([v]))); }
  reshape(t: TensorRef, shape: number[]): TensorRef { return this.keep(reshapeRef(this.backend, t, shape)); }
  dispose(except: TensorRef[] = []): void {
    for (const t of this.temps) if (!except.includes(t)) this.backend.disposeIntermediate(t);
  }
}

/**
 * The structural part of the mask (causal / window / offset) as a [1, 1, sq, sk] tensor of
 * 0/1, made on the host once per shape and kept on the device: every layer of every step
 * asks for the same few, and building one is a JS loop over sq·sk.
 */
const structuralCache = new Map<string, TensorRef>();
function structuralMask(backend: CudaBackend, sq: number, sk: number, o: Opts): TensorRef {
  const key = `${sq},${sk},${o.causal},${o.window},${o.queryOffset}`;
  const hit = structuralCache.get(key);
  if (hit && backend.data.has(hit.dataId)) return hit;
  const allowed = new Float32Array(sq * sk);
  for (let i = 0; i < sq; i++) {
    const pos = o.queryOffset + i;
    for (let j = 0; j < sk; j++) allowed[i * sk + j] = (!o.causal || j <= pos) && (!o.window || pos - j < o.window) ? 1 : 0;
  }
  if (structuralCache.size >= 8) {  // generation with a growing cache offset makes many; keep a few
    const [oldKey, old] = structuralCache.entries().next().value as [string, TensorRef];
    backend.disposeIntermediate(old);
    structuralCache.delete(oldKey);
  }
  const t = backend.makeTensorInfo([1, 1, sq, sk], 'float32', allowed);
  structuralCache.set(key, t);
  return t;
}

/** Additive mask [b, 1, 1, sq, sk]: 0 where visible, −1e30 where not — the reference's values. */
function additiveMask(s: Scope, keyMask: TensorRef, sq: number, o: Opts): TensorRef {
  const b = keyMask.shape[0]!, sk = keyMask.shape[1]!;
  const backend = s.backend;
  const structural = structuralMask(backend, sq, sk, o);
  const keysF = keyMask.dtype === 'float32' ? keyMask : s.keep(convert(backend, keyMask, 'f32', 'float32'));
  const keys = s.reshape(keysF, [b, 1, 1, sk]);
  const visible = s.keep(binaryOp(backend, 'mul', structural, keys, 'float32'));
  const hidden = s.keep(binaryOp(backend, 'sub', s.scalar(1), visible, 'float32'));
  const mask = s.keep(binaryOp(backend, 'mul', hidden, s.scalar(MASKED), 'float32'));
  return s.reshape(mask, [b, 1, 1, sq, sk]);
}

interface Dims { b: number; heads: number; kvHeads: number; sq: number; sk: number; d: number; groups: number }

function dimsOf(q: TensorRef, k: TensorRef): Dims {
  const [b, heads, sq, d] = q.shape as [number, number, number, number];
  const kvHeads = k.shape[1]!, sk = k.shape[2]!;
  if (heads % kvHeads !== 0) throw new Error(`${heads} query heads do not group over ${kvHeads} KV heads`);
  return { b, heads, kvHeads, sq, sk, d, groups: heads / kvHeads };
}

/** P = softmax((Q·Kᵀ)·scale + mask) as [b, kvHeads, groups·sq, sk], with Q viewed the same way. */
function probabilities(s: Scope, q: TensorRef, k: TensorRef, keyMask: TensorRef, o: Opts): { p: TensorRef; qg: TensorRef } {
  const backend = s.backend;
  const { b, kvHeads, groups, sq, sk, d } = dimsOf(q, k);
  const qg = s.reshape(q, [b, kvHeads, groups * sq, d]);
  const raw = s.keep(matMulOp(backend, qg, k, false, true));
  const scaled = s.keep(binaryOp(backend, 'mul', raw, s.scalar(o.scale), 'float32'));
  const masked = s.keep(binaryOp(backend, 'add', s.reshape(scaled, [b, kvHeads, groups, sq, sk]), additiveMask(s, keyMask, sq, o), 'float32'));
  const phys = floatPhys(backend, masked);
  const p = s.keep(backend.makeOutput([b, kvHeads, groups * sq, sk], 'float32', phys));
  backend.addon.softmax(backend.ptr(masked), backend.code(masked), backend.ptr(p), DTYPE[phys], size(masked.shape) / sk, sk, false);
  return { p, qg };
}

export const attentionKernels: tf.KernelConfig[] = [
  defineKernel(ATTENTION, ({ inputs, backend, attrs }) => {
    const q = input(inputs, 'q'), k = input(inputs, 'k'), v = input(inputs, 'v'), keyMask = input(inputs, 'keyMask');
    const s = new Scope(backend);
    try {
      const { p } = probabilities(s, q, k, keyMask, optsOf(attrs));
      const out = matMulOp(backend, p, v, false, false);
      const shaped = reshapeRef(backend, out, q.shape);
      backend.disposeIntermediate(out);
      return shaped;
    } finally {
      s.dispose();
    }
  }),
  defineKernel(ATTENTION_GRAD, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy'), q = input(inputs, 'q'), k = input(inputs, 'k'), v = input(inputs, 'v');
    const keyMask = input(inputs, 'keyMask');
    const o = optsOf(attrs);
    const { b, kvHeads, groups, sq, d } = dimsOf(q, k);
    const s = new Scope(backend);
    try {
      const { p, qg } = probabilities(s, q, k, keyMask, o);
      const dO = s.reshape(dy, [b, kvHeads, groups * sq, d]);
      const dv = matMulOp(backend, p, dO, true, false);                       // [b, kvh, sk, d]
      const dP = s.keep(matMulOp(backend, dO, v, false, true));               // [b, kvh, G, sk]
      const dPP = s.keep(binaryOp(backend, 'mul', dP, p, 'float32'));
      const rows = s.keep(reduceOp(backend, 'sum', dPP, [3], true, 'float32', 'f32'));
      const rowsP = s.keep(binaryOp(backend, 'mul', rows, p, 'float32'));
      const dS = s.keep(binaryOp(backend, 'sub', dPP, rowsP, 'float32'));
      const dRaw = s.keep(binaryOp(backend, 'mul', dS, s.scalar(o.scale), 'float32'));
      const dqg = matMulOp(backend, dRaw, k, false, false);                   // [b, kvh, G, d]
      const dk = matMulOp(backend, dRaw, qg, true, false);                    // [b, kvh, sk, d]
      const dq = reshapeRef(backend, dqg, q.shape);
      backend.disposeIntermediate(dqg);
      return [dq, dk, dv];
    } finally {
      s.dispose();
    }
  }),
];

/** Used only when the cuda kernel ran; off cuda the reference's own autograd applies. */
export const attentionGradient: tf.GradConfig = {
  kernelName: ATTENTION,
  inputsToSave: ['q', 'k', 'v', 'keyMask'],
  gradFunc: (dy, saved, attrs) => {
    const [q, k, v, keyMask] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const g = Array.isArray(dy) ? dy[0]! : dy;
    const [dq, dk, dv] = tf.engine().runKernel(ATTENTION_GRAD, { dy: g, q, k, v, keyMask }, attrs as never) as tf.Tensor[];
    return { q: () => dq!, k: () => dk!, v: () => dv!, keyMask: () => tf.zerosLike(keyMask) };
  },
};
