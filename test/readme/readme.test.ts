/**
 * The README's TypeScript compiles as written against the package's types (dist/index.d.ts:
 * `npm run build` first), the way a consumer's project sees them: `import … from 'typetune'`
 * resolved through node_modules by the package's "exports".
 * test/package/install.test.ts runs the same blocks from a packed and installed copy.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { tmp } from '../cliHarness.js';
import { codeBlocks, readmeBlocks, typeCheck, writeBlocks } from './blocks.js';

describe('README code blocks', () => {
  it('finds every fenced block, with its language and line', () => {
    const md = 'a\n```ts\nconst x = 1;\n```\ntext\n```bash\nls\nls -l\n```\n';
    expect(codeBlocks(md)).toEqual([
      { lang: 'ts', line: 2, code: 'const x = 1;' },
      { lang: 'bash', line: 6, code: 'ls\nls -l' },
    ]);
    expect(() => codeBlocks('```ts\nopen')).toThrow('README.md:1: a code fence that never closes');
  });

  it('every ```ts block type-checks (strict, nodenext, library declarations checked) against the built package', () => {
    expect(existsSync(path.join(repoRoot, 'dist', 'index.d.ts')), 'run npm run build first').toBe(true);
    const blocks = readmeBlocks('ts');
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const dir = tmp('readme');
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(repoRoot, path.join(dir, 'node_modules', 'typetune'));
    const r = typeCheck(dir, writeBlocks(dir, blocks));
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });

  it('the type check fails on a block that does not compile (the check can fail)', () => {
    const dir = tmp('readme-bad');
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(repoRoot, path.join(dir, 'node_modules', 'typetune'));
    const files = writeBlocks(dir, [
      {
        lang: 'ts',
        line: 7,
        code: "import { loadModel } from 'typetune';\nconst { logits } = await model.forward({ inputIds: number[][] });\nconst model = await loadModel('m');",
      },
    ]);
    const r = typeCheck(dir, files);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/readme-7\.ts\(2,\d+\): error TS/);
  });
});
