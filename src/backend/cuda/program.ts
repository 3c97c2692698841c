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
import { isScratchPlaceholder } from './scratchArena.js';

/** Name → id of the addon's primitives and their argument names in order, read once per addon. */
export class PrimitiveTable {
  private readonly byName = new Map<string, { id: number; argNames: readonly string[]; pointer: readonly boolean[] }>();

  constructor(infos: PrimitiveInfo[]) {
    infos.forEach((p, id) => {
      const args = primitiveSignature(p.name) ?? [];
      this.byName.set(p.name, { id, argNames: args.map((a) => a.name), pointer: args.map((a) => a.kind === 'ptr') });
    });
  }

  lookup(name: string): { id: number; argNames: readonly string[]; pointer: readonly boolean[] } {
    const p = this.byName.get(name);
    if (p === undefined) throw new Error(`the CUDA addon has no primitive '${name}' (rebuild it with \`npm run build:cuda\`)`);
    return p;
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
  /** Where the words hold scratch placeholders (./scratchArena.ts), which `run` resolves. */
  private placeholders: number[] = [];
  private readonly table: PrimitiveTable;

  constructor(readonly addon: CudaAddon) {
    this.table = primitiveTable(addon);
  }

  /** Append one primitive call (pointers as numbers, 0 for none; flags as booleans). */
  add<P extends PrimitiveName>(name: P, args: PrimitiveArgs<P>): this {
    // Thousands of these a step: straight into the words, no per-call array or spread (a plain
    // loop over the cached names costs a third of that on the host).
    const { id, argNames, pointer } = this.table.lookup(name);
    const given = args as Record<string, number | boolean>;
    const words = this.words;
    const start = words.length;
    words.push(id);
    for (let i = 0; i < argNames.length; i++) {
      const v = given[argNames[i]!];
      if (v === undefined) {
        words.length = start;
        while (this.placeholders.length > 0 && this.placeholders[this.placeholders.length - 1]! >= start) this.placeholders.pop();
        throw new Error(`primitive '${name}': argument '${argNames[i]}' is missing`);
      }
      if (pointer[i] && isScratchPlaceholder(v as number)) this.placeholders.push(words.length);
      words.push(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    }
    this.entries++;
    return this;
  }

  get size(): number {
    return this.entries;
  }

  /**
   * Launch what was recorded (one addon call) and start empty again; `resolve` gives the
   * addresses of scratch placeholders (a ScratchArena's, placed by then).
   */
  run(resolve?: (placeholder: number) => number): void {
    if (this.entries === 0) return;
    const program = Float64Array.from(this.words);
    const placeholders = this.placeholders;
    this.words = [];
    this.entries = 0;
    this.placeholders = [];
    if (placeholders.length > 0) {
      if (!resolve) throw new Error('a program names scratch placeholders but was run without their arena');
      for (const i of placeholders) program[i] = resolve(program[i]!);
    }
    this.addon.runProgram(program);
  }
}
