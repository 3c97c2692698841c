/**
 * The README's TypeScript compiles as written against the package's types (dist/index.d.ts:
 * `npm run build` first), the way a consumer's project sees them: `import … from 'typetune'`
 * resolved through node_modules by the package's "exports", under TypeScript 5 and 7 with
 * library declarations checked. That holds because 'typetune' names no tfjs type (src/index.ts
 * says why), which is checked here too, as is the tfjs layer at 'typetune/tf'.
 * test/package/install.test.ts runs the same blocks from a packed and installed copy.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { tmp } from '../cliHarness.js';
import { codeBlocks, readmeBlocks, typeCheck, writeBlocks, type TypeScriptMajor } from './blocks.js';

/** A consumer project with typetune (this checkout) in its node_modules. */
function consumer(name: string): string {
  const dir = tmp(name);
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(repoRoot, path.join(dir, 'node_modules', 'typetune'));
  return dir;
}

/** A consumer file naming every value the built `entry` exports at run time: it compiles only if the published types declare each. */
async function everyExport(dir: string, entry: 'index' | 'tf', specifier: string): Promise<string> {
  const names = Object.keys(await import(path.join(repoRoot, 'dist', `${entry}.js`)));
  expect(names).toContain('loadModel');
  const file = path.join(dir, `every-${entry}.ts`);
  writeFileSync(file, `import * as api from '${specifier}';\nexport const all = [${names.map((n) => `api.${n}`).join(', ')}];\n`);
  return file;
}

const built = (): void => {
  expect(existsSync(path.join(repoRoot, 'dist', 'index.d.ts')), 'run npm run build first').toBe(true);
};

describe('README code blocks', () => {
  it('finds every fenced block, with its language and line', () => {
    const md = 'a\n```ts\nconst x = 1;\n```\ntext\n```bash\nls\nls -l\n```\n';
    expect(codeBlocks(md)).toEqual([
      { lang: 'ts', line: 2, code: 'const x = 1;' },
      { lang: 'bash', line: 6, code: 'ls\nls -l' },
    ]);
    expect(() => codeBlocks('```ts\nopen')).toThrow('README.md:1: a code fence that never closes');
  });

  it.each([5, 7] as TypeScriptMajor[])(
    'every ```ts block, and every export of typetune, type-checks under TypeScript %i (strict, nodenext, library declarations checked) against the built package',
    async (typescript) => {
      built();
      const blocks = readmeBlocks('ts');
      expect(blocks.length).toBeGreaterThanOrEqual(3);
      const dir = consumer(`readme-ts${typescript}`);
      const files = [...writeBlocks(dir, blocks), await everyExport(dir, 'index', 'typetune')];
      const r = typeCheck(dir, files, { typescript });
      expect(r.output).toBe('');
      expect(r.code).toBe(0);
    },
  );

  it("a consumer of 'typetune' loads none of tfjs-core's typings (what TypeScript 7 rejects)", () => {
    built();
    const dir = consumer('readme-files');
    const r = typeCheck(dir, writeBlocks(dir, readmeBlocks('ts')), { listFilesOnly: true });
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(path.join(realpathSync(repoRoot), 'dist', 'index.d.ts'));
    expect(r.output).not.toMatch(/@tensorflow|@webgpu/);
  });

  it("'typetune/tf' gives the tfjs layer: checked under TypeScript 5, and under 7 with skipLibCheck (tfjs-core's own typings fail its DOM library)", async () => {
    built();
    const dir = consumer('readme-tf');
    const use = path.join(dir, 'use-tf.ts');
    writeFileSync(
      use,
      [
        "import { asTfTensor, loadModel, modelParts, ops, tf, type DecoderModel } from 'typetune/tf';",
        "const model = await loadModel('models/tiny-llama');",
        'const { logits } = await model.forward({ inputIds: [[1, 2]] });',
        'const probs: tf.Tensor = tf.softmax(asTfTensor(logits));',
        'const base: DecoderModel = modelParts(model).base;',
        'console.log(probs.shape, base.spec.numLayers, typeof ops);',
      ].join('\n'),
    );
    const files = [use, await everyExport(dir, 'tf', 'typetune/tf')];
    for (const r of [typeCheck(dir, files, { typescript: 5 }), typeCheck(dir, files, { typescript: 7, skipLibCheck: true })]) {
      expect(r.output).toBe('');
      expect(r.code).toBe(0);
    }
  });

  it.each([5, 7] as TypeScriptMajor[])(
    'the type check fails under TypeScript %i on a block that does not compile (the check can fail)',
    (typescript) => {
      const dir = consumer(`readme-bad-ts${typescript}`);
      const files = writeBlocks(dir, [
        {
          lang: 'ts',
          line: 7,
          code: "import { loadModel } from 'typetune';\nconst { logits } = await model.forward({ inputIds: number[][] });\nconst model = await loadModel('m');",
        },
      ]);
      const r = typeCheck(dir, files, { typescript });
      expect(r.code).not.toBe(0);
      expect(r.output).toMatch(/readme-7\.ts\(2,\d+\): error TS/);
    },
  );

  it("npm's tsc, which `npm run build` and `npm run typecheck` run, is TypeScript 5, not the typescript7 alias's", () => {
    expect(realpathSync(path.join(repoRoot, 'node_modules', '.bin', 'tsc'))).toBe(
      realpathSync(path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')),
    );
  });
});
