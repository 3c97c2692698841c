/**
 * The precision policy field. typetune's tensors are f32 to tfjs; lower precision lives
 * inside a backend (DESIGN.md, "Precision"). The Trainer hands the policy to the active
 * device (src/backend/device.ts); the CPU device does not honour one, so it computes in
 * f32 and the run reports that it did.
 */
import { tf } from '../backend/tf.js';
import { activeDevice, PRECISION_POLICIES, type PrecisionPolicy } from '../backend/device.js';

export { PRECISION_POLICIES, type PrecisionPolicy };

export interface AppliedPrecision {
  requested: PrecisionPolicy;
  /** What the backend computes in. */
  effective: PrecisionPolicy;
  /** Set when the request could not be honoured, saying why. */
  note: string | null;
}

export function applyPrecision(policy: PrecisionPolicy): AppliedPrecision {
  if (!PRECISION_POLICIES.includes(policy)) {
    throw new Error(`model.precision '${String(policy)}' is not a precision policy; valid: ${PRECISION_POLICIES.join(', ')}`);
  }
  if (activeDevice().setPrecision(policy)) return { requested: policy, effective: policy, note: null };
  if (policy === 'fp32') return { requested: policy, effective: 'fp32', note: null };
  return {
    requested: policy,
    effective: 'fp32',
    note: `precision ${policy} is honoured by the cuda backend; the ${tf.getBackend()} backend computes in fp32`,
  };
}
