import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync, copyFileSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { fixture } from '../helpers.js';
import { llamaWeights, llamaConfig, writeModel } from './synthetic.js';

beforeAll(async () => {
  await useBackend('cpu');
});

function copyOfTinyLlama(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tt-bad-'));
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(fixture(`tiny-llama/${f}`), path.join(dir, f));
  return dir;
}

/** The message must be a single line that names `where` and matches `what`. */
function expectOneLine(fn: () => unknown, where: string, what: RegExp): void {
  let message = '';
  try {
    fn();
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message, 'an error was expected').not.toBe('');
  expect(message.includes('\n'), message).toBe(false);
  expect(message).toContain(where);
  expect(message).toMatch(what);
}

describe('bad model folders', () => {
  it('missing folder', () => {
    expectOneLine(() => loadBaseModel('/nonexistent/model'), '/nonexistent/model', /model folder not found/);
  });

  it('missing config.json', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tt-bad-'));
    expectOneLine(() => loadBaseModel(dir), dir, /missing config\.json/);
  });

  it('config.json that is not JSON', () => {
    const dir = copyOfTinyLlama();
    writeFileSync(path.join(dir, 'config.json'), '{"model_type": "llama",');
    expectOneLine(() => loadBaseModel(dir), path.join(dir, 'config.json'), /not valid JSON/);
  });

  it('unsupported family lists the supported ones', () => {
    const dir = copyOfTinyLlama();
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...llamaConfig(), model_type: 'mamba' }));
    expectOneLine(
      () => loadBaseModel(dir),
      'config.json',
      /unsupported model_type 'mamba': supported are llama, mistral, qwen2, qwen3, gemma, phi3, gpt2/,
    );
  });

  it('missing weight', async () => {
    const w = llamaWeights();
    w.delete('model.layers.1.mlp.down_proj.weight');
    const dir = await writeModel(llamaConfig(), w);
    expectOneLine(() => loadBaseModel(dir), 'model.safetensors', /missing weight 'model\.layers\.1\.mlp\.down_proj\.weight'/);
  });

  it('wrong shape', async () => {
    const w = llamaWeights();
    w.set('model.layers.0.self_attn.k_proj.weight', { shape: [64, 64], data: new Float32Array(64 * 64) });
    const dir = await writeModel(llamaConfig(), w);
    expectOneLine(
      () => loadBaseModel(dir),
      'model.safetensors',
      /'model\.layers\.0\.self_attn\.k_proj\.weight' has shape \[64, 64\], expected \[32, 64\]/,
    );
  });

  it('truncated safetensors', () => {
    const dir = copyOfTinyLlama();
    const file = path.join(dir, 'model.safetensors');
    truncateSync(file, statSync(file).size - 1000);
    expectOneLine(() => loadBaseModel(dir), file, /truncated/);
  });

  it('no weights file at all', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tt-bad-'));
    writeFileSync(path.join(dir, 'config.json'), readFileSync(fixture('tiny-llama/config.json')));
    expectOneLine(() => loadBaseModel(dir), dir, /no model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('a config value of the wrong type', () => {
    const dir = copyOfTinyLlama();
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...llamaConfig(), num_hidden_layers: 'three' }));
    expectOneLine(() => loadBaseModel(dir), 'config.json', /'num_hidden_layers' must be a number, got "three"/);
  });
});
