/**
 * The op vocabulary's names (src/ops/names.ts): which ops each backend fuses, checked on the
 * kernel registries — the cuda list from the backend's own kernel table, without loading the
 * addon — and that no op name is spelt anywhere but names.ts.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { OPS, type OpSignature } from '../../src/ops/names.js';
import { runOp } from '../../src/ops/dispatch.js';
import { rmsNorm } from '../../src/ops/rmsNorm.js';
import '../../src/ops/qlinear.js';
import { cudaGradients, cudaKernels } from '../../src/backend/cuda/registerAllKernels.js';
import { repoRoot } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const ops: OpSignature[] = Object.values(OPS);

/** A cpu kernel under `name` that records the input and attribute names it is called with; returns zeros like x. */
function recordingKernel(name: string, seen: Array<{ inputs: string[]; attrs: string[] }>): tf.KernelConfig {
  return {
    kernelName: name,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      seen.push({ inputs: Object.keys(inputs), attrs: Object.keys(attrs ?? {}) });
      const x = inputs.x as tf.TensorInfo;
      const cpu = backend as unknown as { makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo };
      return cpu.makeTensorInfo(x.shape, 'float32', new Float32Array(x.shape.reduce((a, b) => a * b, 1)));
    },
  };
}
const opNames = ops.map((op) => op.name);

describe('which ops each backend fuses', () => {
  it('cpu: none — every op runs its reference', () => {
    expect(opNames.filter((name) => tf.getKernel(name, 'cpu'))).toEqual([]);
  });

  it('cuda: the 4-bit linear, the norms, the gated activation, rope, attention, the LoRA delta, dropout, both decoder halves, the cross-entropy sum and the LM head fused with it, each with its gradient kernel and a registered gradient', () => {
    const kernels = new Set(cudaKernels.map((k) => k.kernelName));
    const fused = ops.filter((op) => kernels.has(op.name));
    expect(fused.map((op) => op.name)).toEqual([
      OPS.qlinear.name,
      OPS.rmsNorm.name,
      OPS.layerNorm.name,
      OPS.gatedActivation.name,
      OPS.rope.name,
      OPS.attention.name,
      OPS.loraDelta.name,
      OPS.dropout.name,
      OPS.attentionHalf.name,
      OPS.mlpHalf.name,
      OPS.crossEntropySum.name,
      OPS.lmHeadCrossEntropySum.name,
    ]);
    // qlinear registers its gradient itself (src/ops/qlinear.ts): it runs the backend's gradient kernel where there is one.
    const ownGradient = new Set<string>([OPS.qlinear.name]);
    // The decoder halves and the LM-head loss run their gradient kernel under their op's custom gradient
    // (src/ops/decoderHalves.ts, src/ops/lmHeadCrossEntropy.ts): nothing registered.
    const customGradient = new Set<string>([OPS.attentionHalf.name, OPS.mlpHalf.name, OPS.lmHeadCrossEntropySum.name]);
    for (const op of fused) {
      expect(kernels.has(op.gradient!.name), op.gradient!.name).toBe(true);
      if (customGradient.has(op.name))
        expect(
          cudaGradients.map((g) => g.kernelName),
          op.name,
        ).not.toContain(op.name);
      else if (ownGradient.has(op.name)) expect(tf.getGradient(op.name), op.name).toBeDefined();
      else
        expect(
          cudaGradients.map((g) => g.kernelName),
          op.name,
        ).toContain(op.name);
    }
    // No cuda kernel of typetune's own (TT…) that the vocabulary does not name.
    const known = new Set(ops.flatMap((op) => [op.name, ...(op.gradient ? [op.gradient.name] : [])]));
    expect([...kernels].filter((k) => k.startsWith('TT') && !known.has(k))).toEqual([]);
  });
});

describe('the names', () => {
  it('are unique, and spelt only in src/ops/names.ts', () => {
    expect(new Set(opNames).size).toBe(opNames.length);
    const files = readdirSync(path.join(repoRoot, 'src'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => path.join(e.parentPath, e.name))
      .filter((f) => f !== path.join(repoRoot, 'src/ops/names.ts'));
    const spelt = files.flatMap((f) =>
      opNames.filter((n) => readFileSync(f, 'utf8').includes(`'${n}'`)).map((n) => `${path.relative(repoRoot, f)}: '${n}'`),
    );
    expect(spelt).toEqual([]);
  });

  it('a fused kernel is called with the inputs and attributes its signature declares', () => {
    const op: OpSignature = { name: 'TTTestNorm', inputs: ['x', 'w'], attrs: ['eps', 'offset'] };
    const seen: Array<{ inputs: string[]; attrs: string[] }> = [];
    tf.registerKernel(recordingKernel(op.name, seen));
    try {
      const x = tf.ones([2, 3]),
        w = tf.ones([3]);
      const reference = () => {
        throw new Error('the reference ran instead of the registered kernel');
      };
      runOp(op, { x, w }, { eps: 1e-6, offset: 0 }, reference).dispose();
      expect(seen).toEqual([{ inputs: ['x', 'w'], attrs: ['eps', 'offset'] }]);
      expect(() => runOp(op, { x, weight: w }, { eps: 1e-6 }, reference)).toThrow(
        "TTTestNorm: input 'weight' is not one of x, w (src/ops/names.ts)",
      );
      expect(() => runOp(op, { x }, { eps: 1e-6 }, reference)).toThrow("TTTestNorm: input 'w' is missing");
      expect(() => runOp(op, { x, w }, { epsilon: 1e-6 }, reference)).toThrow("TTTestNorm: attribute 'epsilon' is not one of eps, offset");
      tf.dispose([x, w]);
    } finally {
      tf.unregisterKernel(op.name, 'cpu');
    }
  });

  it('a fused kernel with more outputs than the op (saved for its gradient): the op returns the first, frees the rest', () => {
    const op: OpSignature = { name: 'TTTestTwoOutputs', inputs: ['x'], attrs: [], outputs: ['out', 'extra'] };
    tf.registerKernel({
      kernelName: op.name,
      backendName: 'cpu',
      kernelFunc: ({ inputs, backend }) => {
        const x = inputs.x as tf.TensorInfo;
        const cpu = backend as unknown as { makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo };
        return [
          cpu.makeTensorInfo(x.shape, 'float32', new Float32Array([7, 8])),
          cpu.makeTensorInfo([1], 'float32', new Float32Array([9])),
        ];
      },
    });
    try {
      const x = tf.ones([2]);
      const before = tf.memory().numTensors;
      const out = runOp(op, { x }, {}, () => {
        throw new Error('the reference ran instead of the registered kernel');
      });
      expect(Array.from(out.dataSync())).toEqual([7, 8]);
      expect(tf.memory().numTensors).toBe(before + 1);
      const undeclared: OpSignature = { ...op, outputs: undefined };
      expect(() => runOp(undeclared, { x }, {}, () => x)).toThrow(
        'TTTestTwoOutputs: the kernel returned 2 outputs where 1 (one) are declared',
      );
      expect(tf.memory().numTensors).toBe(before + 1);
      tf.dispose([x, out]);
    } finally {
      tf.unregisterKernel(op.name, 'cpu');
    }
  });

  it('the ops call with what names.ts declares (a cpu kernel registered under the op name sees it)', () => {
    const seen: Array<{ inputs: string[]; attrs: string[] }> = [];
    tf.registerKernel(recordingKernel(OPS.rmsNorm.name, seen));
    try {
      const x = tf.ones([2, 3]),
        w = tf.ones([3]);
      rmsNorm(x, w, 1e-6).dispose();
      expect(seen).toEqual([{ inputs: [...OPS.rmsNorm.inputs], attrs: [...OPS.rmsNorm.attrs] }]);
      tf.dispose([x, w]);
    } finally {
      tf.unregisterKernel(OPS.rmsNorm.name, 'cpu');
    }
  });
});
