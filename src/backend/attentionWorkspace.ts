/**
 * The device workspace of the flash attention backward (kernels/src/flash_attention_backward.cu
 * workspaceLayout), as a function of shapes alone so that both the cuda backend
 * (cuda/primitives/attention.ts) and the memory estimate (train/memory/cuda.ts) size it from one
 * rule: Δ (f32 per query row), the rows' and heads' fully-masked flags, and the f32 dQ sum —
 * unless dq is itself packed f32, when the atomics add into dq. Each part rounded to 16 bytes.
 */
const round16 = (n: number) => Math.ceil(n / 16) * 16;

export function flashBackwardWorkspaceBytes(batch: number, heads: number, sq: number, headDim: number, dqPackedF32: boolean): number {
  const rows = batch * heads * sq;
  return round16(rows * 4) + round16(rows) + round16(batch * heads * 4) + (dqPackedF32 ? 0 : round16(rows * headDim * 4));
}
