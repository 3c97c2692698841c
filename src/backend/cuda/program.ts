/**
 * Programs of device primitives: a fused op records the kernels of its forward or backward
 * pass — GEMMs, norms, rope, attention … each a primitive of kernels/src/primitives.h taking
 * only numbers — into one Float64Array, and the addon launches them all in one call. This is
 * how a decoder block crosses from JavaScript to the GPU a few times per step rather than
 * once per kernel (the tfjs engine costs ~40 µs a kernel; a recorded primitive ~0.1 µs).
 *
 * Argument order is the primitive's C++ one; the typed builders in ./primitives/ are the
 * only callers of `add`, so each primitive's contract is written down once on this side.
 */
import type { CudaAddon, PrimitiveInfo } from './addon.js';

/** Name → id and argument count of the addon's primitives, read once per addon. */
export class PrimitiveTable {
  private readonly byName = new Map<string, { id: number; nargs: number }>();

  constructor(infos: PrimitiveInfo[]) {
    infos.forEach((p, id) => this.byName.set(p.name, { id, nargs: p.nargs }));
  }

  lookup(name: string): { id: number; nargs: number } {
    const p = this.byName.get(name);
    if (!p) throw new Error(`the CUDA addon has no primitive '${name}' (rebuild it with \`npm run build:cuda\`)`);
    return p;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }
}

const tables = new WeakMap<CudaAddon, PrimitiveTable>();

export function primitiveTable(addon: CudaAddon): PrimitiveTable {
  let t = tables.get(addon);
  if (!t) {
    t = new PrimitiveTable(addon.primitives());
    tables.set(addon, t);
  }
  return t;
}

export class Program {
  private words: number[] = [];
  private entries = 0;
  private readonly table: PrimitiveTable;

  constructor(readonly addon: CudaAddon) {
    this.table = primitiveTable(addon);
  }

  /** Append one primitive call; `args` in the primitive's C++ order (pointers as numbers, 0 for none). */
  add(name: string, args: readonly number[]): this {
    const { id, nargs } = this.table.lookup(name);
    if (args.length !== nargs) throw new Error(`primitive '${name}' takes ${nargs} arguments, got ${args.length}`);
    this.words.push(id, ...args);
    this.entries++;
    return this;
  }

  get size(): number {
    return this.entries;
  }

  /** Launch what was recorded (one addon call) and start empty again. */
  run(): void {
    if (this.entries === 0) return;
    const program = Float64Array.from(this.words);
    this.words = [];
    this.entries = 0;
    this.addon.runProgram(program);
  }
}
