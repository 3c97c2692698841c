/** An attention problem's sizes, as test/gpu's cases and its emulated kernels name them. */
export interface AttentionDims {
  b: number;
  heads: number;
  kvHeads: number;
  sq: number;
  sk: number;
  d: number;
}
