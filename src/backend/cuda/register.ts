/**
 * registerCudaBackend(): called by src/backend/select.ts for `cuda` and `auto`. Returns
 * false — never throws — when the addon is not built, fails to load, finds no GPU, or was built
 * from kernels whose primitives' arguments differ from ./primitives/signatures.ts;
 * `cudaUnavailableReason()` then says why.
 */
import { tf } from '../tf.js';
import { loadAddon, type CudaAddon } from './addon.js';
import { CudaBackend } from './backend.js';
import { registerCudaKernels } from './registerAllKernels.js';
import { registerDevice } from '../device.js';
import { cudaDevice } from './device.js';
import { signatureMismatch } from './primitives/signatures.js';

let reason: string | undefined;

/** `emulated` replaces the native addon (test/gpu's CPU emulation checks the TypeScript side without a GPU). */
export function registerCudaBackend(emulated?: CudaAddon): boolean {
  if (tf.findBackendFactory('cuda')) return true;
  const load = emulated ? { addon: emulated, file: '(emulated addon)' } : loadAddon();
  if (!load.addon) {
    reason = load.reason;
    return false;
  }
  const addon = load.addon;
  try {
    addon.deviceInfo();
  } catch (err) {
    reason = `the CUDA addon loaded from ${load.file} but ${(err as Error).message}`;
    return false;
  }
  const mismatch = signatureMismatch(addon.primitives());
  if (mismatch) {
    reason = `the CUDA addon at ${load.file} does not match this code: ${mismatch} (rebuild it with \`npm run build:cuda\`)`;
    return false;
  }
  registerCudaKernels();
  registerDevice(cudaDevice);
  // Priority 0: never chosen implicitly; select.ts asks for it by name.
  tf.registerBackend('cuda', () => new CudaBackend(addon), 0);
  return true;
}

/** Why the last registerCudaBackend() returned false (undefined if it did not). */
export function cudaUnavailableReason(): string | undefined {
  return reason;
}
