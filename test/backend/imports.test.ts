/**
 * The layering of DESIGN.md, checked on the source: train/, cli/, api/ and bench/ talk to the
 * device interface (src/backend/device.ts) and backend selection, never to the cuda backend's
 * internals — not directly, and not through any module they import. The cuda backend is
 * reached only by select.ts' run-time import, which registers it and its device.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';

const CUDA = path.join(repoRoot, 'src/backend/cuda') + path.sep;

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

/** The .ts (or .js) file a specifier names, as NodeNext resolves `./x.js` to `./x.ts` in the sources. */
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
const roots = [...['src/train', 'src/cli', 'src/api'].flatMap((d) => tsFiles(path.join(repoRoot, d))), ...tsFiles(path.join(repoRoot, 'bench'))];

describe('imports', () => {
  it('the graph walk sees imports (it finds the cuda backend from its own register.ts)', () => {
    const fromRegister = reachable(path.join(CUDA, 'register.ts'));
    expect([...fromRegister.keys()].map(rel)).toEqual(expect.arrayContaining(['src/backend/cuda/device.ts', 'src/backend/device.ts', 'src/backend/tf.ts']));
    expect(roots.map(rel)).toEqual(expect.arrayContaining(['src/train/trainer.ts', 'src/cli/train.ts', 'src/api/loadModel.ts', 'bench/train.ts']));
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
