/**
 * Programs of device primitives: a fused op records the kernels of its forward or backward
 * pass — GEMMs, norms, rope, attention … each a primitive of kernels/src/primitives.h taking
 * only numbers — into one Float64Array, and the addon launches them all in one call. This is
 * how a decoder block crosses from JavaScript to the GPU a few times per step rather than
 * once per kernel (the tfjs engine costs ~40 µs a kernel; a recorded primitive ~0.1 µs).
 *
 * Arguments are given by name and put in the order of ./primitives/signatures.ts, the table
 * the addon's own registrations are checked against when it loads (./register.ts).
 */
import type { CudaAddon, PrimitiveInfo } from './addon.js';
import { type PrimitiveArgs, type PrimitiveName, primitiveSignature } from './primitives/signatures.js';

/** Name → id of the addon's primitives, read once per addon. */
export class PrimitiveTable {
  private readonly byName = new Map<string, number>();

  constructor(infos: PrimitiveInfo[]) {
    infos.forEach((p, id) => this.byName.set(p.name, id));
  }

  lookup(name: string): number {
    const id = this.byName.get(name);
    if (id === undefined) throw new Error(`the CUDA addon has no primitive '${name}' (rebuild it with \`npm run build:cuda\`)`);
    return id;
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

  /** Append one primitive call (pointers as numbers, 0 for none; flags as booleans). */
  add<P extends PrimitiveName>(name: P, args: PrimitiveArgs<P>): this {
    const id = this.table.lookup(name);
    const given = args as Record<string, number | boolean>;
    const entry = [id];
    for (const { name: arg } of primitiveSignature(name)!) {
      const v = given[arg];
      if (v === undefined) throw new Error(`primitive '${name}': argument '${arg}' is missing`);
      entry.push(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    }
    this.words.push(...entry);
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
