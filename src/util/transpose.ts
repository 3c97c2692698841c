/**
 * A row-major [rows, cols] matrix transposed into a new [cols, rows] array: the one layout
 * change between torch.nn.Linear's [out, in] and GPT-2 Conv1D's [in, out] weights.
 */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}
