/**
 * The layering of ARCHITECTURE.md ("Layers"), checked on the source:
 *  - each folder of src/ imports only folders below it in LAYERS (the order ARCHITECTURE.md
 *    states), but for the climbing imports listed in CLIMBING, each with why;
 *  - train/, cli/, api/ and bench/ talk to the device interface (src/backend/device.ts) and
 *    backend selection, never to the cuda backend's internals — not directly, and not through
 *    any module they import. The cuda backend is reached only by select.ts' run-time import,
 *    which registers it and its device.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';

const CUDA = path.join(repoRoot, 'src/backend/cuda') + path.sep;
const SRC = path.join(repoRoot, 'src') + path.sep;

/** The folders of src/, lowest first: a module may import from its own folder and the folders before it. */
const LAYERS = [
  'util',
  'io',
  'quant',
  'hub',
  'backend',
  'ops',
  'model',
  'adapters',
  'recipe',
  'data',
  'distributed',
  'train',
  'api',
  'cli',
];

/**
 * The imports that climb today, each from a file (or every file under a folder ending in /) to
 * a file, with why and what would end it. Each entry must still match an import: the list only
 * shrinks.
 */
const CLIMBING: Array<{ from: string; to: string; why: string }> = [
  {
    from: 'src/backend/cuda/',
    to: 'src/ops/names.ts',
    why: 'the kernel names of the op vocabulary, which the backend registers its kernels under; to move down beside src/backend/device.ts',
  },
  {
    from: 'src/backend/cuda/layers/projection.ts',
    to: 'src/ops/decoderHalves.ts',
    why: "the fused halves' projection attributes (a type); to move down with the halves' signature",
  },
  {
    from: 'src/backend/cuda/layers/projection.ts',
    to: 'src/model/hooks.ts',
    why: "LoRA dropout's rate and seed (a type); to be passed in as plain numbers",
  },
  { from: 'src/backend/cuda/layers/half.ts', to: 'src/model/spec.ts', why: 'the norm kind (a type); to move down with the ops it names' },
  { from: 'src/ops/decoderHalves.ts', to: 'src/model/spec.ts', why: 'the norm kind (a type); to move down into ops/' },
  { from: 'src/ops/decoderHalves.ts', to: 'src/model/hooks.ts', why: "LoRA dropout's rate and seed (a type); to move down into ops/" },
];

/** A module's place in LAYERS; src/index.ts, the package's entry, stands above them all. */
function layerOf(file: string): number {
  const top = path.relative(SRC, file).split(path.sep)[0]!;
  return top.endsWith('.ts') ? LAYERS.length : LAYERS.indexOf(top);
}

/** Every import in src/ of a module in a higher layer (or outside src/), as "from → to". */
function climbingImports(): string[] {
  const found: string[] = [];
  for (const file of tsFiles(SRC)) {
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      const target = resolve(file, spec);
      if (!target) continue;
      if (!target.startsWith(SRC) || layerOf(target) > layerOf(file)) found.push(`${rel(file)} → ${rel(target)}`);
    }
  }
  return [...new Set(found)].sort();
}

const excused = (edge: string, c: (typeof CLIMBING)[number]): boolean => {
  const [from, to] = edge.split(' → ') as [string, string];
  return to === c.to && (c.from.endsWith('/') ? from.startsWith(c.from) : from === c.from);
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Relative module specifiers a file imports or re-exports, statically or by a literal `import('…')`. */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [/\bfrom\s+'(\.[^']+)'/g, /\bimport\s+'(\.[^']+)'/g, /\bimport\(\s*'(\.[^']+)'\s*\)/g];
  for (const re of patterns) for (const m of source.matchAll(re)) found.push(m[1]!);
  return found;
}

/** The .ts (or .js) file a specifier names, as NodeNext resolves `../helpers.js` to `../helpers.ts` in the sources. */
function resolve(from: string, spec: string): string | null {
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [base.replace(/\.js$/, '.ts'), base]) if (existsSync(candidate)) return candidate;
  return null;
}

/** Every module `file` reaches by imports, each with the chain that reaches it. */
function reachable(file: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[file, [file]]]);
  const queue = [file];
  while (queue.length > 0) {
    const at = queue.shift()!;
    for (const spec of specifiers(readFileSync(at, 'utf8'))) {
      const next = resolve(at, spec);
      if (!next || seen.has(next)) continue;
      seen.set(next, [...seen.get(at)!, next]);
      queue.push(next);
    }
  }
  return seen;
}

const rel = (f: string) => path.relative(repoRoot, f);
const roots = [
  ...['src/train', 'src/cli', 'src/api'].flatMap((d) => tsFiles(path.join(repoRoot, d))),
  ...tsFiles(path.join(repoRoot, 'bench')),
];

describe('layers', () => {
  it('every folder of src/ has its place in LAYERS, and ARCHITECTURE.md states the same order', () => {
    const folders = readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect([...folders].sort()).toEqual([...LAYERS].sort());
    const stated = /^layers, lowest first: (.+)$/m.exec(readFileSync(path.join(repoRoot, 'ARCHITECTURE.md'), 'utf8'));
    expect(stated?.[1]?.split(/\s+/)).toEqual(LAYERS);
  });

  it('no module imports one in a higher layer, but for the listed climbing imports', () => {
    expect(climbingImports().filter((edge) => !CLIMBING.some((c) => excused(edge, c)))).toEqual([]);
  });

  it('each listed climbing import still happens (the check sees them; delete an entry once its import is gone)', () => {
    const edges = climbingImports();
    expect(CLIMBING.filter((c) => !edges.some((edge) => excused(edge, c))).map((c) => `${c.from} → ${c.to}`)).toEqual([]);
  });
});

describe('imports', () => {
  it('the graph walk sees imports (it finds the cuda backend from its own register.ts)', () => {
    const fromRegister = reachable(path.join(CUDA, 'register.ts'));
    expect([...fromRegister.keys()].map(rel)).toEqual(
      expect.arrayContaining(['src/backend/cuda/device.ts', 'src/backend/device.ts', 'src/backend/tf.ts']),
    );
    expect(roots.map(rel)).toEqual(
      expect.arrayContaining(['src/train/trainer.ts', 'src/cli/train.ts', 'src/api/loadModel.ts', 'bench/train.ts']),
    );
  });

  it('nothing in train/, cli/, api/ or bench/ reaches backend/cuda/', () => {
    const offending: string[] = [];
    for (const root of roots) {
      for (const [file, chain] of reachable(root)) {
        if (file.startsWith(CUDA)) offending.push(chain.map(rel).join(' → '));
      }
    }
    expect(offending).toEqual([]);
  });
});
