/**
 * CPU emulations of DoRA's primitives (kernels/src/dora.cu) for the emulated addon: the same
 * arguments (by name), storage (row tensors of one type, f32 scales, norms and sums) and formulas,
 * in plain loops with f32 rounding where the kernels round. They check the TypeScript side
 * (what the fused halves record), never the CUDA code.
 */
import { defineEmulatedPrimitives, type EmulatedMemory, type NamedArgs } from './emulatedPrimitives.js';

const F32 = 0;

function dora({ load, store }: EmulatedMemory) {
  return [
    {
      name: 'doraScale',
      run: (a: NamedArgs) => {
        const { w, t, rows, cols, magnitude, norm, scale } = a;
        if (scale && !magnitude) throw new Error('doraScale: the scale needs the magnitude');
        for (let r = 0; r < rows!; r++) {
          let s = 0;
          for (let j = 0; j < cols!; j++) s = Math.fround(s + Math.fround(load(w!, t!, r * cols! + j) ** 2));
          const n = Math.fround(Math.sqrt(s));
          if (norm) store(norm, F32, r, n);
          if (scale) store(scale, F32, r, load(magnitude!, F32, r) / n);
        }
      },
    },
    {
      name: 'columnScale',
      run: (a: NamedArgs) => {
        const { x, y, t, rows, cols, scale, shift, bias, residual, accumulate } = a;
        for (let i = 0; i < rows!; i++)
          for (let j = 0; j < cols!; j++) {
            const at = i * cols! + j;
            let v = accumulate ? load(y!, t!, at) : 0;
            if (bias) v += load(bias, t!, j);
            if (residual) v += load(residual, t!, at);
            v += Math.fround(load(scale!, F32, j) + shift!) * load(x!, t!, at);
            store(y!, t!, at, v);
          }
      },
    },
    {
      name: 'columnDot',
      run: (a: NamedArgs) => {
        const { a: x, b: y, t, rows, cols, divisor, out } = a;
        for (let j = 0; j < cols!; j++) {
          let s = 0;
          for (let i = 0; i < rows!; i++) s = Math.fround(s + Math.fround(load(x!, t!, i * cols! + j) * load(y!, t!, i * cols! + j)));
          store(out!, F32, j, s / load(divisor!, F32, j));
        }
      },
    },
  ];
}

defineEmulatedPrimitives(dora);
