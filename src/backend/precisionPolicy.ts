/**
 * Storage and compute types of a run (kernels/README.md, "Precision"); apart from device.ts so
 * the run summary's public type (train/precision.ts) names no tfjs type.
 */
export type PrecisionPolicy = 'fp32' | 'bf16-mixed' | 'fp16-mixed';
export const PRECISION_POLICIES: readonly PrecisionPolicy[] = ['fp32', 'bf16-mixed', 'fp16-mixed'];
