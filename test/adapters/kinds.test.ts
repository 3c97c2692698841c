/**
 * The adapter registry: every kind's keys, defaults and docs reach the recipe (schema,
 * validation, --print-defaults, export defaults) from its one declaration, and LoRA keys the
 * adapter supported but the recipe did not (rank_pattern, alpha_pattern) are settable now.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { ADAPTER_KINDS, ADAPTER_TYPES, createAdapter, type LoraAdapter } from '../../src/adapters/index.js';
import { renderDefaultsYaml } from '../../src/recipe/index.js';
import { allKeyPaths } from '../../src/recipe/schema.js';
import { MINIMAL, project } from '../recipe/setup.js';
import { fixture } from '../helpers.js';

const p = project();

beforeAll(async () => {
  await useBackend('cpu');
});

describe('the registry', () => {
  it('adapter.type takes exactly the kinds’ types, each served by one kind', () => {
    expect(ADAPTER_TYPES).toEqual(ADAPTER_KINDS.flatMap((k) => k.types));
    expect(new Set(ADAPTER_TYPES).size).toBe(ADAPTER_TYPES.length);
  });

  it.each(ADAPTER_KINDS.map((k) => [k.title, k] as const))(
    '%s: every field has a default its own check accepts, and no default lacks a field',
    (_, kind) => {
      expect(Object.keys(kind.defaults).sort()).toEqual(Object.keys(kind.fields).sort());
      for (const [key, field] of Object.entries(kind.fields)) {
        expect(field.check(kind.defaults[key]), key).toMatchObject({ ok: true });
        expect(field.doc.length, key).toBeGreaterThan(10);
      }
    },
  );

  it.each(ADAPTER_KINDS.map((k) => [k.title, k] as const))(
    '%s: its keys are in the schema and in --print-defaults, with their defaults and docs',
    (_, kind) => {
      const paths = allKeyPaths();
      const printed = renderDefaultsYaml();
      const isDefaultKind = kind.types.includes('lora');
      // The default kind's section is live YAML; the others are commented-out examples.
      const adapter = parseYaml(printed).adapter as Record<string, unknown>;
      for (const [key, field] of Object.entries(kind.fields)) {
        expect(paths, key).toContain(`adapter.${key}`);
        if (isDefaultKind) {
          expect(adapter[key], key).toEqual(kind.defaults[key]);
          expect(printed).toContain(`# ${field.doc}\n  ${key}:`);
        } else {
          expect(printed).toContain(`#   ${key}: ${JSON.stringify(kind.defaults[key]).replaceAll('"', '')} # ${field.doc}`);
        }
      }
    },
  );

  it.each(ADAPTER_TYPES.map((t) => [t]))('adapter.type %s: a recipe gets its kind’s defaults and first export format', (type) => {
    const kind = ADAPTER_KINDS.find((k) => k.types.includes(type))!;
    const r = p.load(`${MINIMAL}adapter:\n  type: ${type}\n`);
    expect(r.adapter).toEqual({ type, ...kind.defaults });
    expect(r.output.export).toEqual([kind.exports[0]]);
  });

  it('an export format the kind does not write is an error naming what it does write', () => {
    expect(p.error(`${MINIMAL}adapter:\n  type: ia3\noutput:\n  export: [pyreft]\n`)).toBe(
      'recipes/x.yaml:8: output.export: pyreft exports ReFT adapters; adapter.type is ia3 (use peft)',
    );
  });
});

describe('LoRA keys the recipe could not set before', () => {
  it('rank_pattern and alpha_pattern from a recipe reach the adapter', () => {
    const r = p.load(
      `${MINIMAL}adapter:\n  type: lora\n  r: 4\n  lora_alpha: 8\n  target_modules: [q_proj, down_proj]\n  rank_pattern: {down_proj: 16}\n  alpha_pattern: {down_proj: 64}\n`,
    );
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = createAdapter(model, r.adapter, 1) as LoraAdapter;
    const ranks = adapter
      .targets()
      .filter((t) => t.site.layer === 0)
      .map((t) => [t.site.module, t.r, t.scaling]);
    expect(ranks).toEqual([
      ['q_proj', 4, 2],
      ['down_proj', 16, 4],
    ]);
    adapter.dispose();
    model.dispose();
  });

  it('a bad rank_pattern value is an error at its line', () => {
    expect(p.error(`${MINIMAL}adapter:\n  type: lora\n  rank_pattern:\n    down_proj: 2.5\n`)).toBe(
      'recipes/x.yaml:7: adapter.rank_pattern: expected a mapping of module-name pattern → a positive integer; down_proj: expected a positive integer, got 2.5',
    );
  });

  it('IA³: feedforward_modules outside target_modules is an error at its line', () => {
    expect(p.error(`${MINIMAL}adapter:\n  type: ia3\n  target_modules: [k_proj]\n  feedforward_modules: [down_proj]\n`)).toBe(
      "recipes/x.yaml:8: adapter.feedforward_modules: 'down_proj' is not in target_modules [k_proj]; feedforward_modules must be a subset of target_modules (PEFT's IA3Config rule)",
    );
  });
});
