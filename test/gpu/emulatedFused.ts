/**
 * CPU emulations of the fused row primitives (kernels/src/rms_norm.cu, layer_norm.cu,
 * gated_activation.cu, rope.cu) and of dropout (dropout.cu, its mask from src/adapters/philox.ts)
 * for the emulated addon: the same argument order, storage
 * rules (a gradient is bf16 only when dy and the saved input both are; weights f32) and
 * formulas, in plain loops with f32 rounding of the stored values. They check the
 * TypeScript side (kernels, gradients, storage decisions), never the CUDA code.
 */
import { defineEmulatedPrimitives, type EmulatedMemory, type NamedArgs } from './emulatedPrimitives.js';
import { erf } from './emulatedMath.js';
import { dropoutKeepThreshold, dropoutScale, philoxBits24 } from '../../src/adapters/philox.js';

const BF16 = 1,
  F32 = 0;
const gradDtype = (xt: number, dyt: number) => (xt === BF16 && dyt === BF16 ? BF16 : F32);

function checkGradDtype(what: string, dt: number, xt: number, dyt: number): void {
  if (dt !== gradDtype(xt, dyt)) throw new Error(`${what}: dx must be stored ${gradDtype(xt, dyt) === BF16 ? 'bf16' : 'f32'}`);
}

/** [act(x), act′(x)] for gated_activation.cu's codes. */
function activate(act: number, x: number): [number, number] {
  switch (act) {
    case 0: {
      const s = 1 / (1 + Math.exp(-x));
      return [x * s, s * (1 + x * (1 - s))];
    }
    case 1:
      // biome-ignore lint/complexity/useMathMinMax: NaN gives 0 here, as the kernel's x > 0 ? x : 0 does; Math.max would give NaN
      return [x > 0 ? x : 0, x > 0 ? 1 : 0];
    case 2: {
      const cdf = 0.5 * (1 + erf(x * Math.SQRT1_2));
      return [x * cdf, cdf + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)];
    }
    case 3: {
      const k = Math.sqrt(2 / Math.PI),
        t = Math.tanh(k * (x + 0.044715 * x ** 3));
      return [0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)];
    }
    case 4: {
      const t = Math.tanh(x);
      return [t, 1 - t * t];
    }
    case 5: {
      const s = 1 / (1 + Math.exp(-x));
      return [s, s * (1 - s)];
    }
    case 6:
      return [x, 1];
    default:
      throw new Error(`unknown activation code ${act} (0..6)`);
  }
}

function norms({ load, store }: EmulatedMemory) {
  const row = (p: number, t: number, base: number, cols: number) => Array.from({ length: cols }, (_, j) => load(p, t, base + j));
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  return [
    {
      name: 'rmsNormForward',
      run: (a: NamedArgs) => {
        const { x, xt, w, y, rows, cols, eps, offset } = a;
        for (let r = 0; r < rows!; r++) {
          const v = row(x!, xt!, r * cols!, cols!);
          const inv = 1 / Math.sqrt(mean(v.map((e) => e * e)) + eps!);
          v.forEach((e, j) => store(y!, xt!, r * cols! + j, e * inv * (load(w!, F32, j) + offset!)));
        }
      },
    },
    {
      name: 'rmsNormBackward',
      run: (a: NamedArgs) => {
        const { dy, dyt, x, xt, w, dx, dxt, dw, rows, cols, eps, offset, residual } = a;
        const plus = (i: number) => (residual ? load(residual, dxt!, i) : 0);
        checkGradDtype('rmsNormBackward', dxt!, xt!, dyt!);
        const dwAcc = new Float64Array(cols!);
        for (let r = 0; r < rows!; r++) {
          const v = row(x!, xt!, r * cols!, cols!),
            g = row(dy!, dyt!, r * cols!, cols!);
          const ww = v.map((_, j) => load(w!, F32, j) + offset!);
          const inv = 1 / Math.sqrt(mean(v.map((e) => e * e)) + eps!);
          const c = inv ** 3 * mean(v.map((e, j) => g[j]! * ww[j]! * e));
          v.forEach((e, j) => {
            store(dx!, dxt!, r * cols! + j, inv * g[j]! * ww[j]! - c * e + plus(r * cols! + j));
            dwAcc[j]! += g[j]! * e * inv;
          });
        }
        if (dw) dwAcc.forEach((s, j) => store(dw, F32, j, s));
      },
    },
    {
      name: 'layerNormForward',
      run: (a: NamedArgs) => {
        const { x, xt, w, b, y, rows, cols, eps } = a;
        for (let r = 0; r < rows!; r++) {
          const v = row(x!, xt!, r * cols!, cols!);
          const mu = mean(v),
            inv = 1 / Math.sqrt(mean(v.map((e) => (e - mu) ** 2)) + eps!);
          v.forEach((e, j) => store(y!, xt!, r * cols! + j, (e - mu) * inv * load(w!, F32, j) + load(b!, F32, j)));
        }
      },
    },
    {
      name: 'layerNormBackward',
      run: (a: NamedArgs) => {
        const { dy, dyt, x, xt, w, dx, dxt, dw, db, rows, cols, eps, residual } = a;
        const plus = (i: number) => (residual ? load(residual, dxt!, i) : 0);
        checkGradDtype('layerNormBackward', dxt!, xt!, dyt!);
        if (!dw !== !db) throw new Error('layerNormBackward: dw and db are computed together: give both or neither');
        const dwAcc = new Float64Array(cols!),
          dbAcc = new Float64Array(cols!);
        for (let r = 0; r < rows!; r++) {
          const v = row(x!, xt!, r * cols!, cols!),
            g = row(dy!, dyt!, r * cols!, cols!);
          const mu = mean(v),
            inv = 1 / Math.sqrt(mean(v.map((e) => (e - mu) ** 2)) + eps!);
          const xh = v.map((e) => (e - mu) * inv),
            gw = g.map((e, j) => e * load(w!, F32, j));
          const meanG = mean(gw),
            meanGX = mean(gw.map((e, j) => e * xh[j]!));
          xh.forEach((h, j) => {
            store(dx!, dxt!, r * cols! + j, inv * (gw[j]! - meanG - h * meanGX) + plus(r * cols! + j));
            dwAcc[j]! += g[j]! * h;
            dbAcc[j]! += g[j]!;
          });
        }
        if (dw) dwAcc.forEach((s, j) => store(dw, F32, j, s));
        if (db) dbAcc.forEach((s, j) => store(db, F32, j, s));
      },
    },
  ];
}

function gated({ load, store }: EmulatedMemory) {
  return [
    {
      name: 'gatedActivationForward',
      run: (a: NamedArgs) => {
        const { gate, up, t, out, n, act } = a;
        // up 0: up ≡ 1 (an ungated MLP's act(x)).
        for (let i = 0; i < n!; i++) store(out!, t!, i, activate(act!, load(gate!, t!, i))[0] * (up ? load(up, t!, i) : 1));
      },
    },
    {
      name: 'gatedActivationBackward',
      run: (a: NamedArgs) => {
        const { dy, dyt, gate, up, t, dgate, dup, dt, n, act } = a;
        checkGradDtype('gatedActivationBackward', dt!, t!, dyt!);
        if (!up !== !dup) throw new Error('gatedActivationBackward: up and dup are both given (gated) or both null (ungated, up ≡ 1)');
        for (let i = 0; i < n!; i++) {
          const d = load(dy!, dyt!, i),
            [v, slope] = activate(act!, load(gate!, t!, i));
          store(dgate!, dt!, i, d * (up ? load(up, t!, i) : 1) * slope);
          if (dup) store(dup, dt!, i, d * v);
        }
      },
    },
  ];
}

function rope({ load, store }: EmulatedMemory) {
  const rotate = (inverse: boolean) => (a: NamedArgs) => {
    const { x, t, cos, sin, y, rows, seq, inner, headDim, rotaryDim } = a;
    if (rotaryDim! % 2 || rotaryDim! > headDim!) throw new Error(`rotaryDim ${rotaryDim} must be even and within the head dim ${headDim}`);
    if (rows! % (seq! * inner!)) throw new Error(`${rows} rows are not whole sequences of ${seq} × ${inner} rows`);
    const half = rotaryDim! / 2;
    for (let r = 0; r < rows!; r++) {
      const table = (Math.floor(r / inner!) % seq!) * headDim!;
      for (let j = 0; j < headDim!; j++) {
        let v = load(x!, t!, r * headDim! + j) * load(cos!, F32, table + j);
        if (j < 2 * half) {
          const partner = j < half ? j + half : j - half,
            sign = j < half ? -1 : 1;
          const other = load(x!, t!, r * headDim! + partner);
          v += inverse ? -sign * other * load(sin!, F32, table + partner) : sign * other * load(sin!, F32, table + j);
        }
        store(y!, t!, r * headDim! + j, v);
      }
    }
  };
  return [
    { name: 'ropeForward', run: rotate(false) },
    { name: 'ropeBackward', run: rotate(true) },
  ];
}

function dropout({ load, store }: EmulatedMemory) {
  return [
    {
      name: 'dropout',
      run: (a: NamedArgs) => {
        const { x, y, t, n, seed, offset, rate, accumulate } = a;
        const threshold = dropoutKeepThreshold(rate!),
          scale = dropoutScale(rate!);
        for (let i = 0; i < n!; i++) {
          const dropped = philoxBits24(seed!, offset! + i) >= threshold ? Math.fround(load(x!, t!, i) * scale) : 0;
          store(y!, t!, i, accumulate ? load(y!, t!, i) + dropped : dropped);
        }
      },
    },
  ];
}

defineEmulatedPrimitives((mem) => [...norms(mem), ...gated(mem), ...rope(mem), ...dropout(mem)]);
