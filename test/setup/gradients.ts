/**
 * vitest globalSetup: src/backend/tfjs_gradients.js is generated (scripts/bundle-gradients.mjs),
 * not committed, and no install script makes it (a consumer's install must not run our build);
 * so the test runs make it before any test imports src/, and again when tfjs-core is newer.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export default function setup(): void {
  const bundle = path.join(root, 'src', 'backend', 'tfjs_gradients.js');
  const tfjsCore = createRequire(path.join(root, 'package.json')).resolve('@tensorflow/tfjs-core/package.json');
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= statSync(tfjsCore).mtimeMs) return;
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'bundle-gradients.mjs')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/bundle-gradients.mjs failed (exit ${r.status}): ${r.stderr}`);
}
