/**
 * A config.json is outside input: every size it gives is an integer within a bound far above
 * any released model, refused in one line naming the file, the key, the value and the bound
 * before anything is looped over or allocated (`inspect` on a billion layers answers at once).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readModelSpec } from '../../src/model/config.js';
import { SIZE_LIMITS } from '../../src/model/configLimits.js';
import { expectOneLineError, runBuilt, snapshot } from '../cliHarness.js';
import { fixture } from '../helpers.js';

const llama = (): Record<string, unknown> => JSON.parse(readFileSync(fixture('tiny-llama/config.json'), 'utf8')) as Record<string, unknown>;
const gpt2 = (): Record<string, unknown> => JSON.parse(readFileSync(fixture('tiny-gpt2/config.json'), 'utf8')) as Record<string, unknown>;

function folderWith(config: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tt-limits-'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

function specError(config: Record<string, unknown>): string {
  const dir = folderWith(config);
  try {
    readModelSpec(dir);
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
}

const bound = (key: string): string => {
  const l = SIZE_LIMITS[key]!;
  return `expected an integer from ${l.min} to ${l.max} (${l.why})`;
};

describe('config.json sizes are bounded', () => {
  it.each([
    ['num_hidden_layers', 1_000_000_000],
    ['num_hidden_layers', 0],
    ['num_hidden_layers', 2.5],
    ['num_hidden_layers', -3],
    ['hidden_size', 2 ** 40],
    ['intermediate_size', 1e300],
    ['num_attention_heads', 0],
    ['num_key_value_heads', 1e9],
    ['head_dim', 1e9],
    ['vocab_size', 2 ** 31],
    ['max_position_embeddings', 1e12],
  ])('llama %s: %d', (key, value) => {
    expect(specError({ ...llama(), [key]: value }).replace(/^.*config\.json/, 'config.json')).toBe(
      `config.json: '${key}' is ${value}; ${bound(key)}`,
    );
  });

  it.each([
    ['n_layer', 1e9],
    ['n_embd', 1e7],
    ['n_head', 0],
    ['n_inner', 2 ** 30],
    ['n_positions', 2 ** 33],
  ])('gpt2 %s: %d', (key, value) => {
    expect(specError({ ...gpt2(), [key]: value })).toMatch(
      new RegExp(`config\\.json: '${key}' is ${value}; ${bound(key).replace(/[()]/g, '\\$&')}$`),
    );
  });

  it('the message names the file itself', () => {
    const dir = folderWith({ ...llama(), num_hidden_layers: 1e9 });
    expect(() => readModelSpec(dir)).toThrow(
      `${path.join(dir, 'config.json')}: 'num_hidden_layers' is 1000000000; expected an integer from 1 to 10000 (the deepest released models have under 200 layers)`,
    );
  });

  it('sliding_window 0 and max_window_layers 0 mean none, and are accepted; negative ones are not', () => {
    expect(specError({ ...llama(), model_type: 'qwen2', sliding_window: 0, max_window_layers: 0 })).toBe('accepted');
    expect(specError({ ...llama(), model_type: 'qwen2', sliding_window: -1 })).toMatch(
      /'sliding_window' is -1; expected an integer from 0 to 2147483647/,
    );
  });

  it('partial_rotary_factor must be a fraction of head_dim (it sizes the rotary tables)', () => {
    expect(specError({ ...llama(), partial_rotary_factor: 1e9 })).toMatch(
      /config\.json: 'partial_rotary_factor' is 1000000000; expected a fraction in \(0, 1\] of head_dim$/,
    );
    expect(specError({ ...llama(), rope_parameters: { rope_type: 'default', rope_theta: 5000, partial_rotary_factor: 0 } })).toMatch(
      /'partial_rotary_factor' is 0;/,
    );
    expect(specError({ ...llama(), partial_rotary_factor: 0.5 })).toBe('accepted');
  });

  it('config.json larger than 16 MiB, or not a regular file, is not read', () => {
    const big = folderWith(llama());
    writeFileSync(path.join(big, 'config.json'), `${JSON.stringify(llama())}${' '.repeat(16 * 2 ** 20)}`);
    expect(() => readModelSpec(big)).toThrow(
      new RegExp(`^${path.join(big, 'config.json')}: is \\d+ bytes; a config\\.json is at most 16777216 \\(16 MiB\\)$`),
    );
    const fifo = mkdtempSync(path.join(tmpdir(), 'tt-limits-'));
    execFileSync('mkfifo', [path.join(fifo, 'config.json')]);
    expect(() => readModelSpec(fifo)).toThrow(`${path.join(fifo, 'config.json')}: not a regular file`);
  });

  it('every shipped fixture config is within the bounds', () => {
    for (const name of ['tiny-llama', 'tiny-gpt2', 'tiny-qwen2', 'tiny-llama-bnb-nf4'])
      expect(() => readModelSpec(fixture(name))).not.toThrow();
  });
});

describe('typetune inspect on a config asking for a billion layers', () => {
  it('one line, exit 2, at once; the folder untouched', () => {
    const dir = folderWith({ ...llama(), num_hidden_layers: 1_000_000_000 });
    const before = snapshot(dir);
    const started = Date.now();
    const r = runBuilt('typetune', ['inspect', dir]);
    expectOneLineError(
      r,
      new RegExp(
        `^error: ${path.join(dir, 'config\\.json')}: 'num_hidden_layers' is 1000000000; expected an integer from 1 to 10000 \\(the deepest released models have under 200 layers\\)$`,
      ),
    );
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(snapshot(dir)).toEqual(before);
  });
});
