/** logging.eval_samples: greedy completions of eval prompts at each evaluation, in TensorBoard's Text tab. */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Trainer } from '../../src/train/trainer.js';
import { readEventFile } from '../../src/io/tensorboard.js';
import { generate } from '../../src/model/generate.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { repoRoot } from '../helpers.js';
import { expectOneLineError, tinyRecipe, tmp, trainInProcess } from '../cliHarness.js';

describe('sample completions at evaluation', () => {
  it('writes the first N eval prompts, their greedy completion and the reference at every eval', async () => {
    const dir = tmp('samples');
    const recipe = tinyRecipe(dir, 'max_steps: 2, eval_every_steps: 1');
    const t = await Trainer.fromRecipe(recipe, [
      `data.path=${path.join(repoRoot, 'datasets/alice_qa.jsonl')}`,
      'data.format=prompt_completion',
      'data.max_length=64',
      'data.shuffle=false',
      'data.eval={split: 0.25}',
      'logging.tensorboard=true',
      'logging.eval_samples=2',
      'logging.sample_max_new_tokens=5',
    ]);
    await t.train({ handleSignals: false });
    const logs = path.join(dir, 'run', 'logs');
    const [file] = readdirSync(logs).filter((f) => f.startsWith('events.out.tfevents.'));
    const texts = readEventFile(path.join(logs, file!)).flatMap((e) => (e.texts ?? []).map((x) => ({ ...x, step: e.step })));
    expect(texts.map((x) => [x.tag, x.step])).toEqual([
      ['eval/samples', 1],
      ['eval/samples', 2],
    ]);
    const last = texts[1]!.text;
    expect(last.match(/\*\*Sample \d\*\*/g)).toEqual(['**Sample 1**', '**Sample 2**']);
    // The completion shown is what the trained model generates greedily from that prompt.
    const evalSet = (t as unknown as { data: { eval: { inputIds: number[]; promptLength: number }[] } }).data.eval;
    const tok = await loadTokenizer(path.join(repoRoot, 'models/tiny-llama'));
    const first = evalSet[0]!;
    const prompt = first.inputIds.slice(0, first.promptLength);
    const completion = generate(t.model, prompt, { hooks: t.adapter, maxNewTokens: 5 });
    const indented = (s: string) =>
      s
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n');
    expect(last).toContain(
      `**Sample 1** — prompt:\n\n${indented(tok.decode(prompt, { skipSpecialTokens: true }))}\n\ncompletion:\n\n${indented(tok.decode(completion, { skipSpecialTokens: true }))}\n\nreference:\n\n${indented(tok.decode(first.inputIds.slice(first.promptLength), { skipSpecialTokens: true }))}`,
    );
    t.dispose();
  });

  it('refuses eval_samples without TensorBoard or without eval data, naming the key', async () => {
    const dir = tmp('samples-bad');
    const recipe = tinyRecipe(dir, 'max_steps: 1');
    expectOneLineError(
      await trainInProcess(['--recipe', recipe, '--set', 'logging.eval_samples=2']),
      /logging\.eval_samples: sample completions are written to TensorBoard \(eval\/samples\); set logging\.tensorboard: true, or eval_samples: 0/,
    );
    expectOneLineError(
      await trainInProcess(['--recipe', recipe, '--set', 'logging.eval_samples=2', '--set', 'logging.tensorboard=true']),
      /logging\.eval_samples: sample completions come from the evaluation data; set data\.eval/,
    );
  });
});
