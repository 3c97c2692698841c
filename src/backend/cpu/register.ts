/** typetune's replacements for slow kernels of tfjs' CPU backend (same names, same semantics). */
import { tf } from '../tf.js';
import { batchMatMulConfig } from './batchMatMul.js';

const KERNELS: tf.KernelConfig[] = [batchMatMulConfig];

let registered = false;

export function registerCpuKernels(): void {
  if (registered) return;
  for (const k of KERNELS) {
    if (tf.getKernel(k.kernelName, k.backendName)) tf.unregisterKernel(k.kernelName, k.backendName);
    tf.registerKernel(k);
  }
  registered = true;
}
