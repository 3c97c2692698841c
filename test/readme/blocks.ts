/**
 * The README's code blocks as files a user would paste: each ```ts block becomes its own ES
 * module in a consumer folder, type-checked strictly (strict, nodenext, no skipLibCheck)
 * against the package's published types, by TypeScript 5 (what the repo builds with) or 7.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
 * The compilers a consumer may have: TypeScript 5 (the `typescript` devDependency) and
 * TypeScript 7, the native port (the `typescript7` alias of typescript@7, whose tsc runs a
 * binary from its platform package).
 */
export const COMPILERS = { 5: 'typescript', 7: 'typescript7' } as const;
export type TypeScriptMajor = keyof typeof COMPILERS;

/** The `tsc` script of TypeScript `major` in the repo's node_modules; throws, saying how to get it, when it is missing. */
export function tscOf(major: TypeScriptMajor): string {
  const tsc = path.join(repoRoot, 'node_modules', COMPILERS[major], 'bin', 'tsc');
  if (!existsSync(tsc))
    throw new Error(`${tsc}: TypeScript ${major} is not installed; run npm ci (package.json lists ${COMPILERS[major]})`);
  return tsc;
}

export interface TypeCheckOptions {
  /** Where the JavaScript goes (to run the blocks with plain node); none emitted without it. */
  emitTo?: string;
  /** Default 5. */
  typescript?: TypeScriptMajor;
  /** Skip checking library declarations (default false: a consumer's strictest setting). */
  skipLibCheck?: boolean;
  /** Check nothing; the output lists the files the compile loads. */
  listFilesOnly?: boolean;
}

/**
 * `tsc` over `files` as strict ESM under nodenext, library declarations checked too unless
 * asked (`types` listed, as TypeScript 7 wants them); its output ('' when clean).
 */
export function typeCheck(dir: string, files: string[], opts: TypeCheckOptions = {}): { code: number | null; output: string } {
  const { emitTo, typescript = 5, skipLibCheck = false, listFilesOnly = false } = opts;
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          skipLibCheck,
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
  const args = [tscOf(typescript), '-p', dir, ...(listFilesOnly ? ['--listFilesOnly'] : [])];
  const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}
