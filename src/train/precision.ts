/**
 * The precision policy field. typetune's tensors are f32 to tfjs; lower precision lives
 * inside a backend (kernels/README.md, "Precision"). The Trainer hands the policy to the active
 * device (src/backend/device.ts); the CPU device does not honour one, so it computes in
 * f32 and the run reports that it did.
 */
import { tf } from '../backend/tf.js';
import { activeDevice } from '../backend/device.js';
import { PRECISION_POLICIES, type PrecisionPolicy } from '../backend/precisionPolicy.js';

export { PRECISION_POLICIES, type PrecisionPolicy };

export interface AppliedPrecision {
  requested: PrecisionPolicy | 'auto';
  /** What the backend computes in. */
  effective: PrecisionPolicy;
  /** Set when the request could not be honoured, saying why. */
  note: string | null;
}

/**
 * Hand `policy` to the active device. `auto` — the recipes' default — is bf16-mixed where the
 * device honours it (cuda: bf16 frozen weights and tensor-core GEMMs, what a GPU run wants)
 * and fp32 elsewhere, without a note: nothing was asked for that could not be done.
 */
export function applyPrecision(policy: PrecisionPolicy | 'auto'): AppliedPrecision {
  if (policy === 'auto') {
    if (activeDevice().setPrecision('bf16-mixed')) return { requested: 'auto', effective: 'bf16-mixed', note: null };
    activeDevice().setPrecision('fp32');
    return { requested: 'auto', effective: 'fp32', note: null };
  }
  if (!PRECISION_POLICIES.includes(policy)) {
    throw new Error(`model.precision '${String(policy)}' is not a precision policy; valid: auto, ${PRECISION_POLICIES.join(', ')}`);
  }
  if (activeDevice().setPrecision(policy)) return { requested: policy, effective: policy, note: null };
  if (policy === 'fp32') return { requested: policy, effective: 'fp32', note: null };
  return {
    requested: policy,
    effective: 'fp32',
    note: `precision ${policy} is honoured by the cuda backend; the ${tf.getBackend()} backend computes in fp32`,
  };
}
