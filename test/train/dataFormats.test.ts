/**
 * Every TRL dataset type trains with the format left to the columns — language modelling,
 * prompt–completion, conversational, conversational prompt–completion — and a chat template
 * given in the recipe (inline or as a file) is the one used, also for a model without one.
 */
import { describe, expect, it } from 'vitest';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { expectOneLineError, tmp, trainInProcess } from '../cliHarness.js';
import { Trainer } from '../../src/train/trainer.js';
import { loadTokenizer, type ChatMessage } from '../../src/data/tokenizer.js';

const TINY = path.join(repoRoot, 'models/tiny-llama');
const turn = (role: string, content: string) => ({ role, content });
const ROWS: Record<string, object[]> = {
  language_modelling: [{ text: 'Alice fell down the rabbit hole.' }, { text: 'The Hatter poured the tea.' }],
  prompt_completion: [
    { prompt: 'Q: Who fell?\nA:', completion: ' Alice.' },
    { prompt: 'Q: Who poured?\nA:', completion: ' The Hatter.' },
  ],
  conversational: [
    { messages: [turn('user', 'Who fell?'), turn('assistant', 'Alice.')] },
    { messages: [turn('user', 'Who poured?'), turn('assistant', 'The Hatter.')] },
  ],
  conversational_prompt_completion: [
    { prompt: [turn('user', 'Who fell?')], completion: [turn('assistant', 'Alice.')] },
    { prompt: [turn('user', 'Who poured?')], completion: [turn('assistant', 'The Hatter.')] },
  ],
};

/** A recipe over `rows` (data.jsonl beside it) with no data.format: the columns decide. */
function recipe(dir: string, rows: object[], model = TINY, data: string[] = []): string {
  writeFileSync(path.join(dir, 'data.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  const file = path.join(dir, 'recipe.yaml');
  writeFileSync(
    file,
    [
      `model: { path: ${model}, backend: cpu }`,
      'adapter: { type: lora, r: 1, target_modules: [q_proj] }',
      'data:',
      '  path: data.jsonl',
      '  max_length: 128',
      ...data.map((l) => `  ${l}`),
      'training: { batch_size: 2, max_steps: 2, learning_rate: 1.0e-3, lr_scheduler: constant, seed: 3 }',
      'logging: { every_steps: 1, tensorboard: false }',
      `output: { dir: ${path.join(dir, 'run')}, export: [peft] }`,
    ].join('\n'),
  );
  return file;
}

/** The longest tokenized row of a recipe's data (what the chat template decides). */
async function longest(file: string, overrides: string[] = []): Promise<number> {
  const t = await Trainer.fromRecipe(file, overrides);
  const n = t.longestSequence;
  t.dispose();
  return n;
}

describe("TRL's dataset types, format from the columns", () => {
  for (const [kind, rows] of Object.entries(ROWS)) {
    it(`${kind} trains`, async () => {
      const dir = tmp(`format-${kind}`);
      const r = await trainInProcess(['--recipe', recipe(dir, rows), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const steps = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { event: string; loss?: number })
        .filter((e) => e.event === 'step');
      expect(steps).toHaveLength(2);
      for (const s of steps) expect(Number.isFinite(s.loss) && s.loss! > 0).toBe(true);
    });
  }

  it("TRL's loss-scope keys, data.assistant_only_loss and data.completion_only_loss, change what is supervised", async () => {
    const dir = tmp('loss-scope');
    // Evaluating on the training rows counts their supervised tokens (the eval event's targets).
    for (const [kind, key] of [
      ['conversational', 'assistant_only_loss'],
      ['prompt_completion', 'completion_only_loss'],
      ['conversational_prompt_completion', 'completion_only_loss'],
    ] as const) {
      const file = recipe(dir, ROWS[kind]!, TINY, ['eval: { path: data.jsonl }']);
      const targets = async (overrides: string[]): Promise<number> => {
        const t = await Trainer.fromRecipe(file, ['training.max_steps=1', ...overrides]);
        let n = 0;
        t.on('eval', (e) => {
          n = e.targets;
        });
        await t.train({ handleSignals: false, overwrite: true });
        t.dispose();
        return n;
      };
      const scoped = await targets([]);
      const all = await targets([`data.${key}=false`]);
      expect(scoped, kind).toBeGreaterThan(0);
      expect(all, kind).toBeGreaterThan(scoped);
    }
    // Written where TRL's SFTConfig has it, the key points to its place in the recipe.
    const misplaced = await trainInProcess(['--recipe', recipe(dir, ROWS.conversational!), '--set', 'training.assistant_only_loss=false']);
    expectOneLineError(misplaced, /training\.assistant_only_loss: unknown key; did you mean data\.assistant_only_loss\?/);
  });
});

describe('data.chat_template', () => {
  // The tiny model's own template is ChatML; this one adds a long preamble to every conversation.
  const TEMPLATE =
    "{{ 'A Wonderland transcript.' }}{% for m in messages %}{{ '\\n' + m['role'] + ': ' + m['content'] }}{% endfor %}{% if add_generation_prompt %}{{ '\\nassistant: ' }}{% endif %}";

  it("inline or from a file beside the recipe, it replaces the model's template", async () => {
    const dir = tmp('template');
    const file = recipe(dir, ROWS.conversational!);
    writeFileSync(path.join(dir, 'wonderland.jinja'), TEMPLATE);
    const own = await longest(file);
    const inline = await longest(file, [`data.chat_template=${JSON.stringify(TEMPLATE)}`]);
    const fromFile = await longest(file, [`data.chat_template=${path.join(dir, 'wonderland.jinja')}`]);
    // The longest conversation as the recipe's template renders it, and as the model's does.
    const rendered = async (template?: string) => {
      const tok = await loadTokenizer(TINY, { chatTemplate: template ? { template, origin: 'test' } : null });
      return Math.max(
        ...ROWS.conversational!.map(
          (r) => tok.encode(tok.applyChatTemplate((r as { messages: ChatMessage[] }).messages), { addSpecialTokens: false }).length,
        ),
      );
    };
    expect(own).toBe(await rendered());
    expect(inline).toBe(await rendered(TEMPLATE));
    expect(inline).not.toBe(own);
    expect(fromFile).toBe(inline);
  });

  it('a model without a chat template trains chat data with one from the recipe, and says so when there is none', async () => {
    const dir = tmp('no-template');
    const model = path.join(dir, 'model');
    cpSync(TINY, model, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(model, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    delete config.chat_template;
    writeFileSync(path.join(model, 'tokenizer_config.json'), JSON.stringify(config));
    const without = await trainInProcess(['--recipe', recipe(dir, ROWS.conversational!, model)]);
    expectOneLineError(
      without,
      /tokenizer_config\.json: no "chat_template" \(and no chat_template\.jinja in \S+\); chat data needs a chat template: give one in the recipe as data\.chat_template$/,
    );
    writeFileSync(path.join(dir, 'wonderland.jinja'), TEMPLATE);
    const withFile = await trainInProcess(['--recipe', recipe(dir, ROWS.conversational!, model, ['chat_template: wonderland.jinja'])]);
    expect(withFile.code, withFile.stderr).toBe(0);
  });

  it('bad templates are one line naming data.chat_template', async () => {
    const dir = tmp('bad-template');
    const file = recipe(dir, ROWS.conversational!);
    expectOneLineError(
      await trainInProcess(['--recipe', file, '--set', `data.chat_template=${path.join(dir, 'missing.jinja')}`]),
      /data\.chat_template: template file not found: \S+missing\.jinja \(give the Jinja text itself, or a file holding it\)/,
    );
    writeFileSync(path.join(dir, 'plain.txt'), 'no template here');
    expectOneLineError(
      await trainInProcess(['--recipe', file, '--set', `data.chat_template=${path.join(dir, 'plain.txt')}`]),
      /^error: data\.chat_template \S+plain\.txt: not a Jinja chat template \(it holds no \{\{ … \}\} or \{% … %\}\)$/,
    );
    expectOneLineError(
      await trainInProcess(['--recipe', file, '--set', 'data.chat_template="{% for m in messages %}"']),
      /^error: data\.chat_template: the template does not parse \(/,
    );
    // The recipe's template renders with the same bounded range as a model's (src/data/chatTemplate.ts).
    expectOneLineError(
      await trainInProcess([
        '--recipe',
        file,
        '--set',
        'data.chat_template="{% for i in range(1000000000) %}x{% endfor %}{{ messages[0].content }}"',
      ]),
      /^error: data\.chat_template: rendering the template failed: range\(1000000000\) would make 1000000000 items; a chat template's range may make at most 100000 \(jinja2's sandbox MAX_RANGE\)$/,
    );
    // A FIFO is never opened (reading it would block forever).
    const fifo = path.join(dir, 'template.fifo');
    execFileSync('mkfifo', [fifo]);
    expectOneLineError(
      await trainInProcess(['--recipe', file, '--set', `data.chat_template=${fifo}`]),
      new RegExp(
        `^error: data\\.chat_template: ${fifo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a regular file \\(a FIFO, device or folder is never read\\)$`,
      ),
    );
  });
});
