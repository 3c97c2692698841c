/**
 * CPU emulations of the addon's device primitives (kernels/src/primitives.h), for the
 * emulated addon (TYPETUNE_CUDA_EMULATE=1): each mirrors its kernel's contract — physical
 * dtypes, rounding points — in plain loops, so the programs the fused ops record can be checked
 * against the reference ops on a machine without a GPU. Each reads its arguments by name,
 * decoded in the order of src/backend/cuda/primitives/signatures.ts (the table the addon is
 * checked against), so argument order is stated there alone. They say nothing about the CUDA
 * code itself; only the device run does.
 */
import { primitiveSignature, signatureText, type ArgSpec } from '../../src/backend/cuda/primitives/signatures.js';

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

/** A primitive's arguments by their signature's names (flags as 1 or 0). */
export type NamedArgs = Record<string, number>;

export interface EmulatedPrimitive {
  name: string;
  run(args: NamedArgs): void;
}

/** An emulated primitive with its signature: what `primitives()` reports and `runProgram` decodes by. */
export interface SignedPrimitive extends EmulatedPrimitive {
  args: readonly ArgSpec[];
  text: string;
}

/** The arguments of one program entry, by name. */
export function decodeArgs(args: readonly ArgSpec[], words: Float64Array): NamedArgs {
  const named: NamedArgs = {};
  args.forEach((a, i) => {
    named[a.name] = words[i]!;
  });
  return named;
}

/** Registered by each concern's emulation below; the order is the table's id order. */
type Definer = (mem: EmulatedMemory) => EmulatedPrimitive[];
const definers: Definer[] = [];

/** Add a concern's emulated primitives (call at module load, as the C++ side registers statically). */
export function defineEmulatedPrimitives(d: Definer): void {
  definers.push(d);
}

export function emulatedPrimitives(mem: EmulatedMemory): { table: SignedPrimitive[]; gemm(g: GemmCall): void } {
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
  const emulated: EmulatedPrimitive[] = [
    {
      name: 'gemm',
      run: (a) => gemm({ ...(a as Omit<GemmCall, 'transA' | 'transB'>), transA: a.transA !== 0, transB: a.transB !== 0 }),
    },
  ];
  for (const d of definers) emulated.push(...d(mem));
  const table = emulated.map((p) => {
    const args = primitiveSignature(p.name);
    if (!args) throw new Error(`emulated primitive '${p.name}' is not in src/backend/cuda/primitives/signatures.ts`);
    return { ...p, args, text: signatureText(args) };
  });
  return { table, gemm };
}
