/**
 * The precision policy field. typetune's tensors are f32 to tfjs; lower precision lives
 * inside a backend (DESIGN.md, "Precision"). The Trainer hands the policy to the active
 * backend when it understands one (`setPrecisionPolicy`); the CPU backend does not, so it
 * computes in f32 and the run reports that it did.
 */
import { tf } from '../backend/tf.js';

export type PrecisionPolicy = 'fp32' | 'bf16-mixed' | 'fp16-mixed';
export const PRECISION_POLICIES: readonly PrecisionPolicy[] = ['fp32', 'bf16-mixed', 'fp16-mixed'];

/** What a backend implements to honour a precision policy; returns false if it cannot. */
export interface PrecisionAwareBackend {
  setPrecisionPolicy(policy: PrecisionPolicy): boolean;
}

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
  const backend = tf.backend() as unknown as Partial<PrecisionAwareBackend>;
  if (typeof backend.setPrecisionPolicy === 'function' && backend.setPrecisionPolicy(policy)) {
    return { requested: policy, effective: policy, note: null };
  }
  if (policy === 'fp32') return { requested: policy, effective: 'fp32', note: null };
  return {
    requested: policy,
    effective: 'fp32',
    note: `precision ${policy} is honoured by the cuda backend; the ${tf.getBackend()} backend computes in fp32`,
  };
}
