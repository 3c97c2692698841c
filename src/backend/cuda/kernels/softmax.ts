/**
 * Softmax and LogSoftmax over the last axis (kernels/src/softmax.cu), accumulated in f32.
 * Softmax stores its result in the input's float storage (attention probabilities of bf16
 * scores are bf16, as transformers casts them back to the query's dtype); LogSoftmax always
 * returns f32 (log-probabilities feed the loss, which torch computes in f32).
 */
import type { tf } from '../../tf.js';
import { DTYPE } from '../addon.js';
import { defineKernel, floatPhys, input, normAxis, size } from '../kernelUtils.js';

function softmaxKernel(kernelName: string, axisAttr: string, log: boolean): tf.KernelConfig {
  return defineKernel(kernelName, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'logits');
    const rank = x.shape.length;
    const axis = normAxis(Number(attrs[axisAttr] ?? -1), rank);
    if (axis !== rank - 1) throw new Error(`${kernelName} over axis ${axis} of rank ${rank}: only the last axis is supported`);
    const cols = x.shape[rank - 1] ?? 1;
    const phys = log ? 'f32' : floatPhys(backend, x);
    const out = backend.makeOutput(x.shape, 'float32', phys);
    backend.addon.softmax(backend.ptr(x), backend.code(x), backend.ptr(out), DTYPE[phys], size(x.shape) / Math.max(cols, 1), cols, log);
    return out;
  });
}

export const softmaxKernels: tf.KernelConfig[] = [softmaxKernel('Softmax', 'dim', false), softmaxKernel('LogSoftmax', 'axis', true)];
