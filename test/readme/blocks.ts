/**
 * The README's code blocks as files a user would paste: each ```ts block becomes its own ES
 * module in a consumer folder, type-checked by the TypeScript the repo builds with, strictly
 * (strict, nodenext, no skipLibCheck) against the package's published types.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';

export interface CodeBlock {
  /** The fence's language, e.g. "ts" or "bash". */
  lang: string;
  /** 1-based line of the opening fence in README.md. */
  line: number;
  code: string;
}

/** Every fenced block of a Markdown text, in order. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    if (end < 0) throw new Error(`README.md:${i + 1}: a code fence that never closes`);
    blocks.push({ lang: open[1]!, line: i + 1, code: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return blocks;
}

export const readmeBlocks = (lang: string): CodeBlock[] =>
  codeBlocks(readFileSync(path.join(repoRoot, 'README.md'), 'utf8')).filter((b) => b.lang === lang);

/** Writes block k as `readme-<line>.ts` in `dir` (a consumer folder whose package.json says "type": "module"). */
export function writeBlocks(dir: string, blocks: CodeBlock[]): string[] {
  return blocks.map((b) => {
    const file = path.join(dir, `readme-${b.line}.ts`);
    writeFileSync(file, `${b.code}\n`);
    return file;
  });
}

/**
 * `tsc` over `files` as strict ESM under nodenext, library declarations checked too (no
 * skipLibCheck; `types` listed, as TypeScript 7 wants them); its output ('' when clean).
 * With `emitTo`, the JavaScript goes there (to run the blocks with plain node).
 */
export function typeCheck(dir: string, files: string[], emitTo?: string): { code: number | null; output: string } {
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          skipLibCheck: false,
          ...(emitTo ? { outDir: emitTo, rootDir: dir } : { noEmit: true }),
          types: ['node'],
          typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
        },
        files: files.map((f) => path.relative(dir, f)),
      },
      null,
      2,
    ),
  );
  const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}
