/**
 * Every path a comment names exists. Comments in src/, bench/, kernels/, test/ and scripts/ cite
 * files — `src/train/runner.ts`, `../helpers.ts`, `kernels/src/dropout.cu`, ARCHITECTURE.md — and
 * one that moved or never was sends the reader nowhere. The scan reads comments only
 * (TypeScript's own parser finds them in .ts/.js/.mjs; a small scanner in C++/CUDA, shell and
 * Python), takes the path-like words from them and resolves each: a word starting with `./` or
 * `../` against the file's folder; one starting with a top-level folder of the repository
 * against the root; a bare source file name (`philox.cuh`) or document name against the file's
 * folder, the root, or else any scanned file of that name. Glob words (`primitives/*.ts`) must
 * match something. ARCHITECTURE.md's paths are held to the same rule.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { repoRoot } from '../helpers.js';

/** Folders scanned, from the root, and what in them is not ours to check (with why). */
const SCANNED = ['src', 'bench', 'kernels', 'test', 'scripts'];
const SKIPPED: Record<string, string> = {
  'test/fixtures': 'files other tools wrote: model data, the READMEs PEFT saved beside its adapters, the script transformers runs',
  'src/backend/tfjs_gradients.js': "tfjs-core's own code, bundled by scripts/bundle-gradients.mjs: its comments cite tfjs' files",
};
const SOURCE_EXTENSIONS = ['.ts', '.js', '.mjs', '.cu', '.cuh', '.h', '.cpp', '.sh', '.py'];

/** The repository's top-level folders: a word starting with one of them is a path from the root. */
const ROOT_ENTRIES = ['src', 'kernels', 'test', 'bench', 'scripts', 'recipes', 'models', 'datasets', '.ci'];
/** Documents named by bare file name. */
const DOCUMENTS = ['README.md', 'ARCHITECTURE.md', 'DESIGN.md'];
/** Extensions that make a bare word (`philox.cuh`) a file name of this repository's sources. */
const BARE_EXTENSIONS = ['ts', 'mjs', 'cu', 'cuh', 'cpp', 'h'];

/**
 * Path-like words that name no file of this repository on purpose, each with why. Kept short:
 * a word is listed only when it cannot be written as a path that resolves.
 */
const NOT_PATHS: Record<string, string> = {
  'node_api.h': "Node-API's header, from the node-api-headers package",
  'nccl.h': "NCCL's header",
  'kernels.cu': "bitsandbytes' csrc/kernels.cu, whose quantisation the 4-bit codes reproduce",
  '../shared/fixtures': 'beside the checkout, not in it: the fixtures a machine may share between checkouts',
  '../shared/peers/bench_peers.py': 'beside the checkout, not in it: the PyTorch peers the bench compares with',
  '../shared/peers/verify_export.py': 'beside the checkout, not in it: the script that loads exports with the real PEFT on the GPU machine',
  './x': 'an example of a value that is a path, not a Hub id',
  '../../../../ESCAPED': "an example of a hostile server's value, which must never become a path",
};

interface Comment {
  line: number;
  text: string;
}
interface Missing {
  file: string;
  line: number;
  ref: string;
}

function sourceFiles(): string[] {
  const out: string[] = [];
  for (const top of SCANNED) {
    for (const e of readdirSync(path.join(repoRoot, top), { withFileTypes: true, recursive: true })) {
      if (!e.isFile() || !SOURCE_EXTENSIONS.includes(path.extname(e.name))) continue;
      const file = path.join(e.parentPath, e.name);
      const rel = path.relative(repoRoot, file);
      if (rel.split(path.sep).includes('node_modules') || Object.keys(SKIPPED).some((s) => rel === s || rel.startsWith(s + path.sep)))
        continue;
      out.push(file);
    }
  }
  return out.sort();
}

/** The comments of a TypeScript or JavaScript file, as TypeScript's parser attaches them to tokens. */
function scriptComments(file: string, text: string): Comment[] {
  const kind = file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const ranges = new Map<number, ts.CommentRange>();
  const visit = (node: ts.Node): void => {
    if (node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode) return;
    if (node.kind < ts.SyntaxKind.FirstNode || node.kind === ts.SyntaxKind.EndOfFileToken) {
      for (const r of ts.getLeadingCommentRanges(text, node.pos) ?? []) ranges.set(r.pos, r);
      for (const r of ts.getTrailingCommentRanges(text, node.end) ?? []) ranges.set(r.pos, r);
      return;
    }
    for (const child of node.getChildren(source)) visit(child);
  };
  visit(source);
  for (const r of ts.getLeadingCommentRanges(text, 0) ?? []) ranges.set(r.pos, r);
  return [...ranges.values()].map((r) => ({ line: source.getLineAndCharacterOfPosition(r.pos).line + 1, text: text.slice(r.pos, r.end) }));
}

/** The comments of a C++/CUDA file: `//` and `/* *\/` outside string and character literals. */
function cComments(text: string): Comment[] {
  const out: Comment[] = [];
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    else if (c === '"' || c === "'") {
      for (i++; i < text.length && text[i] !== c && text[i] !== '\n'; i++) if (text[i] === '\\') i++;
    } else if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i) < 0 ? text.length : text.indexOf('\n', i);
      out.push({ line, text: text.slice(i, end) });
      i = end - 1;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2) < 0 ? text.length : text.indexOf('*/', i + 2) + 2;
      out.push({ line, text: text.slice(i, end) });
      for (let j = i; j < end; j++) if (text[j] === '\n') line++;
      i = end - 1;
    }
  }
  return out;
}

/** The `#` comments of a shell or Python file: a `#` outside quotes on its line. */
function hashComments(text: string): Comment[] {
  const out: Comment[] = [];
  text.split('\n').forEach((content, index) => {
    let quote: string | null = null;
    for (let i = 0; i < content.length; i++) {
      const c = content[i]!;
      if (quote) {
        if (c === '\\') i++;
        else if (c === quote) quote = null;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '#' && (i === 0 || /\s/.test(content[i - 1]!)) && !(index === 0 && content.startsWith('#!'))) {
        out.push({ line: index + 1, text: content.slice(i) });
        break;
      }
    }
  });
  return out;
}

function comments(file: string, text: string): Comment[] {
  const ext = path.extname(file);
  if (ext === '.md') return [{ line: 1, text }];
  if (['.ts', '.js', '.mjs'].includes(ext)) return scriptComments(file, text);
  if (['.sh', '.py'].includes(ext)) return hashComments(text);
  return cComments(text);
}

const PATH_CHARS = String.raw`[\w.*{},/-]`;
const REFERENCE = new RegExp(
  [
    String.raw`(?<![\w./@-])\.\.?/${PATH_CHARS}+`,
    String.raw`(?<![\w./@:-])(?:${ROOT_ENTRIES.map((e) => e.replace('.', String.raw`\.`)).join('|')})/${PATH_CHARS}*`,
    String.raw`(?<![\w./@-])(?:${DOCUMENTS.map((d) => d.replace('.', String.raw`\.`)).join('|')})(?![\w/-])`,
    String.raw`(?<![\w./@-])[\w-]+\.(?:${BARE_EXTENSIONS.join('|')})(?!\.?[\w/(-])`,
  ].join('|'),
  'g',
);

/**
 * The path-like words of one line of a comment, without trailing punctuation. A word running
 * into a placeholder (`blobs/<etag>`) is a pattern, not a path.
 */
function references(line: string): string[] {
  return [...line.matchAll(REFERENCE)]
    .filter((m) => line[m.index + m[0].length] !== '<')
    .map((m) => m[0].replace(/[.,]+$/, ''))
    .filter((r) => r.length > 0 && !/^\.+$/.test(r));
}

/** A glob's one-segment patterns (`*`, `{a,b}`) as a RegExp over a file name. */
function segmentPattern(segment: string): RegExp {
  const body = segment
    .replace(/[.+^$()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[^/]*')
    .replace(/\{([^}]*)\}/g, (_, alts: string) => `(?:${alts.split(',').join('|')})`);
  return new RegExp(`^${body}$`);
}

/** Whether `rel` (folders separated by `/`, maybe with `*` or `{a,b}`) names something under `base`. */
function existsUnder(base: string, rel: string): boolean {
  let found = [base];
  for (const segment of rel.split('/').filter((s) => s !== '')) {
    if (segment === '.' || segment === '..') {
      found = found.map((f) => path.join(f, segment));
      continue;
    }
    if (!/[*{]/.test(segment)) {
      found = found.map((f) => path.join(f, segment)).filter((f) => existsSync(f));
      continue;
    }
    const pattern = segmentPattern(segment);
    found = found.flatMap((f) =>
      existsSync(f) && statSync(f).isDirectory()
        ? readdirSync(f)
            .filter((n) => pattern.test(n))
            .map((n) => path.join(f, n))
        : [],
    );
  }
  return found.length > 0;
}

function resolves(ref: string, fromFile: string, basenames: Set<string>): boolean {
  // Sources import `../helpers.js` meaning `../helpers.ts`, as NodeNext resolves it.
  if (ref.endsWith('.js') && resolves(ref.replace(/\.js$/, '.ts'), fromFile, basenames)) return true;
  if (ref.startsWith('./') || ref.startsWith('../')) return existsUnder(path.dirname(fromFile), ref);
  if (ref.includes('/')) return existsUnder(repoRoot, ref);
  return existsSync(path.join(path.dirname(fromFile), ref)) || existsSync(path.join(repoRoot, ref)) || basenames.has(ref);
}

/** Every path-like word in `files`' comments that names nothing. */
function missingPaths(files: Array<{ file: string; text: string }>, basenames: Set<string>): Missing[] {
  const missing: Missing[] = [];
  for (const { file, text } of files) {
    for (const comment of comments(file, text)) {
      comment.text.split('\n').forEach((content, offset) => {
        for (const ref of references(content)) {
          if (Object.hasOwn(NOT_PATHS, ref) || resolves(ref, file, basenames)) continue;
          missing.push({ file: path.relative(repoRoot, file), line: comment.line + offset, ref });
        }
      });
    }
  }
  return missing;
}

const files = [...sourceFiles(), path.join(repoRoot, 'ARCHITECTURE.md')].map((file) => ({ file, text: readFileSync(file, 'utf8') }));
const basenames = new Set(files.map(({ file }) => path.basename(file)));
const report = (found: Missing[]) => found.map((m) => `${m.file}:${m.line}: ${m.ref}`);
const fake = (rel: string, text: string) => ({ file: path.join(repoRoot, rel), text });

describe('paths named in comments', () => {
  it('every one exists, in the sources and in ARCHITECTURE.md', () => {
    expect(files.length).toBeGreaterThan(300);
    expect(report(missingPaths(files, basenames))).toEqual([]);
  });

  it('finds a missing path in a TypeScript comment, and nothing in strings, templates or regular expressions', () => {
    const source = [
      "import { tf } from '../backend/tf.js'; // ./runner.ts and ../backend/tf.ts exist",
      '/**',
      ' * See src/train/nowhere.ts and DESIGN.md (the cuda pool: src/train/memory/cuda.ts).',
      ' */',
      "const quoted = 'src/train/inAString.ts', re = /'(\\.[^']+)'\\/\\/ src\\/x/g;",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the sample is TypeScript source holding a template literal
      'const t = `// src/train/inATemplate.ts ${quoted} /* ./gone.ts */`; // ./gone.ts',
      '// model.layers.0, transformer.h.0, blobs/<etag>: not paths; kernels/src/*.cu and src/{ops,model}/ match',
      '// kernels/src/*.nothing matches nothing',
    ].join('\n');
    expect(report(missingPaths([fake('src/train/fake.ts', source)], basenames))).toEqual([
      'src/train/fake.ts:3: src/train/nowhere.ts',
      'src/train/fake.ts:3: DESIGN.md',
      'src/train/fake.ts:6: ./gone.ts',
      'src/train/fake.ts:8: kernels/src/*.nothing',
    ]);
  });

  it('finds a missing path in C++/CUDA, shell and Python comments', () => {
    const cuda =
      '#include "philox.cuh"  // philox.cuh is here, gone.cuh is not\nconst char* s = "src/nowhere.ts"; /* and\n src/adapters/gone.ts */';
    const shell = '#!/usr/bin/env bash\necho "# src/notAComment.ts" # bench/gone.sh\n# kernels/README.md exists';
    const python = "x = '# ../notAComment.py'  # ../gone.py\n";
    expect(
      report(
        missingPaths([fake('kernels/src/fake.cu', cuda), fake('bench/fake.sh', shell), fake('test/interop/fake.py', python)], basenames),
      ),
    ).toEqual([
      'kernels/src/fake.cu:1: gone.cuh',
      'kernels/src/fake.cu:3: src/adapters/gone.ts',
      'bench/fake.sh:2: bench/gone.sh',
      'test/interop/fake.py:1: ../gone.py',
    ]);
  });
});
