/**
 * CPU emulations of the addon's device primitives (kernels/src/primitives.h), for the
 * emulated addon (TYPETUNE_CUDA_EMULATE=1): each mirrors its kernel's contract — argument
 * order, physical dtypes, rounding points — in plain loops, so the programs the fused ops
 * record can be checked against the reference ops on a machine without a GPU. They say
 * nothing about the CUDA code itself; only the device run does.
 */

/** Memory access of the emulated addon: dtype codes as kernels/src/common.h (0 f32, 1 bf16, 2 i32, 3 u8). */
export interface EmulatedMemory {
  load(p: number, dt: number, i: number): number;
  store(p: number, dt: number, i: number, v: number): void;
  view(p: number, dt: number): Float32Array | Uint16Array | Int32Array | Uint8Array;
}

export interface GemmCall {
  a: number;
  b: number;
  c: number;
  d: number;
  abType: number;
  dType: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  lda: number;
  ldb: number;
  ldd: number;
  alpha: number;
  beta: number;
  bias: number;
  batch: number;
  strideA: number;
  strideB: number;
  strideD: number;
}

export interface EmulatedPrimitive {
  name: string;
  nargs: number;
  run(args: Float64Array): void;
}

/** Registered by each concern's emulation below; the order is the table's id order. */
type Definer = (mem: EmulatedMemory) => EmulatedPrimitive[];
const definers: Definer[] = [];

/** Add a concern's emulated primitives (call at module load, as the C++ side registers statically). */
export function defineEmulatedPrimitives(d: Definer): void {
  definers.push(d);
}

export function emulatedPrimitives(mem: EmulatedMemory): { table: EmulatedPrimitive[]; gemm(g: GemmCall): void } {
  const { load, store } = mem;
  const gemm = (g: GemmCall): void => {
    const lda = g.lda || (g.transA ? g.m : g.k),
      ldb = g.ldb || (g.transB ? g.k : g.n),
      ldd = g.ldd || g.n;
    for (let q = 0; q < g.batch; q++)
      for (let i = 0; i < g.m; i++)
        for (let j = 0; j < g.n; j++) {
          let acc = 0;
          for (let l = 0; l < g.k; l++) {
            const av = load(g.a, g.abType, q * g.strideA + (g.transA ? l * lda + i : i * lda + l));
            const bv = load(g.b, g.abType, q * g.strideB + (g.transB ? j * ldb + l : l * ldb + j));
            acc = Math.fround(acc + Math.fround(av * bv));
          }
          let v = Math.fround(g.alpha * acc);
          if (g.bias) v = Math.fround(v + load(g.bias, g.dType, j));
          const at = q * g.strideD + i * ldd + j;
          if (g.beta !== 0) v = Math.fround(v + Math.fround(g.beta * load(g.c, g.dType, at)));
          store(g.d, g.dType, at, v);
        }
  };
  const table: EmulatedPrimitive[] = [
    {
      name: 'gemm',
      nargs: 21,
      run: (a) =>
        gemm({
          a: a[0]!,
          b: a[1]!,
          c: a[2]!,
          d: a[3]!,
          abType: a[4]!,
          dType: a[5]!,
          m: a[6]!,
          n: a[7]!,
          k: a[8]!,
          transA: a[9] !== 0,
          transB: a[10] !== 0,
          lda: a[11]!,
          ldb: a[12]!,
          ldd: a[13]!,
          alpha: a[14]!,
          beta: a[15]!,
          bias: a[16]!,
          batch: a[17]!,
          strideA: a[18]!,
          strideB: a[19]!,
          strideD: a[20]!,
        }),
    },
  ];
  for (const d of definers) table.push(...d(mem));
  return { table, gemm };
}
