/**
 * The device primitives' argument order, checked on the CPU: the TypeScript table
 * (src/backend/cuda/primitives/signatures.ts) against every `TT_PRIMITIVE` registration in
 * kernels/src, read from the source — so CI catches a drift without building the addon —
 * and the check the backend runs against a loaded addon's `primitives()`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CudaAddon } from '../../../../src/backend/cuda/addon.js';
import { Program } from '../../../../src/backend/cuda/program.js';
import { gemm } from '../../../../src/backend/cuda/primitives/gemm.js';
import {
  ARG_KINDS,
  primitiveSignatures,
  signatureMismatch,
  signatureText,
  VIEW_PARTS,
} from '../../../../src/backend/cuda/primitives/signatures.js';

const KERNELS = fileURLToPath(new URL('../../../../kernels/src', import.meta.url));

/** `TT_PRIMITIVE("name", "sig" "nature", fn)` of one source file: name → the adjacent literals joined. */
function registrations(source: string): Array<{ name: string; signature: string }> {
  const found: Array<{ name: string; signature: string }> = [];
  const call = /^TT_PRIMITIVE\(\s*"(\w+)",\s*((?:"[^"]*"\s*)+),\s*\w+\s*\);/gm;
  for (const m of source.matchAll(call)) {
    const literals = [...m[2]!.matchAll(/"([^"]*)"/g)].map((l) => l[1]!);
    found.push({ name: m[1]!, signature: literals.join('') });
  }
  return found;
}

/** The C++ signature's arguments with `name:view` spelled out, as kernels/src/primitives.cpp does. */
function expand(signature: string): string {
  return signature
    .split(/\s+/)
    .filter(Boolean)
    .flatMap((token) => {
      const [name, kind] = token.split(':');
      if (kind === 'view') return VIEW_PARTS.map(([suffix, k]) => `${name}${suffix}:${k}`);
      if (!name || !(ARG_KINDS as readonly string[]).includes(kind ?? '')) throw new Error(`malformed argument '${token}'`);
      return [token];
    })
    .join(' ');
}

const sources = readdirSync(KERNELS).filter((f) => f.endsWith('.cu') || f.endsWith('.cpp'));
const native = sources.flatMap((file) =>
  registrations(readFileSync(path.join(KERNELS, file), 'utf8')).map((r) => ({ ...r, file, args: expand(r.signature) })),
);

describe('primitive signatures', () => {
  it('every TT_PRIMITIVE in kernels/src has the arguments of signatures.ts, in order, and the reverse', () => {
    const mention = (f: string) => (readFileSync(path.join(KERNELS, f), 'utf8').match(/^TT_PRIMITIVE\(/gm) ?? []).length;
    // Each registration was read (none skipped by the pattern).
    expect(native.length).toBe(sources.reduce((n, f) => n + mention(f), 0));
    expect(signatureMismatch(native)).toBeUndefined();
    const names = primitiveSignatures().map((p) => p.name);
    expect(native.map((p) => p.name).sort()).toEqual([...names].sort());
  });

  it('names the first argument that differs, and a primitive the addon lacks', () => {
    const addon = primitiveSignatures().map(({ name, args }) => ({ name, args: signatureText(args) }));
    const swapped = addon.map((p) =>
      p.name === 'rmsNormForward' ? { ...p, args: 'x:ptr xt:dtype w:ptr y:ptr cols:int rows:int eps:float offset:float' } : p,
    );
    expect(signatureMismatch(swapped)).toBe(
      "primitive 'rmsNormForward' argument 4: the CUDA addon has cols:int, src/backend/cuda/primitives/signatures.ts has rows:int",
    );
    const shorter = addon.map((p) => (p.name === 'dropout' ? { ...p, args: p.args.replace(/ accumulate:flag$/, '') } : p));
    expect(signatureMismatch(shorter)).toBe(
      "primitive 'dropout' argument 7: the CUDA addon has nothing, src/backend/cuda/primitives/signatures.ts has accumulate:flag",
    );
    expect(signatureMismatch(addon.filter((p) => p.name !== 'gemm'))).toBe("the CUDA addon has no primitive 'gemm'");
    const old = addon.map((p) => ({ name: p.name, nargs: p.args.split(' ').length }));
    expect(signatureMismatch(old as never)).toBe("the CUDA addon does not report primitive 'gemm''s arguments (built before signatures)");
    expect(signatureMismatch([...addon, { name: 'newer', args: 'x:ptr' }])).toBeUndefined();
  });

  it('a program records each argument by name in the signature’s order, flags as 1 and 0', () => {
    const table = primitiveSignatures().map(({ name, args }) => ({ name, args: signatureText(args) }));
    let recorded: number[] = [];
    const addon = {
      primitives: () => table,
      runProgram: (words: Float64Array) => {
        recorded = Array.from(words);
      },
    } as unknown as CudaAddon;
    const p = new Program(addon);
    gemm(p, { a: 11, b: 12, d: 14, abType: 1, dType: 0, m: 2, n: 3, k: 4, transB: true, bias: 15, ldd: 7 });
    p.run();
    const id = table.findIndex((t) => t.name === 'gemm');
    // a b c d abType dType m n k transA transB lda ldb ldd alpha beta bias batch strideA strideB strideD
    expect(recorded).toEqual([id, 11, 12, 0, 14, 1, 0, 2, 3, 4, 0, 1, 0, 0, 7, 1, 0, 15, 1, 0, 0, 0]);
    expect(() => p.add('dropout', { x: 1, y: 2, t: 0, n: 3, seed: 4, offset: 5, rate: 0.1 } as never)).toThrow(
      "primitive 'dropout': argument 'accumulate' is missing",
    );
  });
});
