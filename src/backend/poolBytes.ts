/**
 * The cuda device pool's allocation rule (kernels/src/memory.cu): every request is rounded up to
 * 256 bytes, at least one unit. One statement of it for the cuda backend (its scratch arena, the
 * host-only addon's replay) and the memory estimate (train/memory/cuda.ts), which may not import
 * the backend's internals.
 */
export const POOL_ALIGNMENT = 256;

/** The bytes the pool hands out for a request of `bytes`. */
export const poolBytes = (bytes: number): number => Math.ceil(Math.max(bytes, 1) / POOL_ALIGNMENT) * POOL_ALIGNMENT;
