/**
 * Sample completions at an evaluation (`logging.eval_samples`): the first N eval examples'
 * prompts completed greedily by the model with its adapter as trained so far, beside the
 * data's own continuation, as Markdown for TensorBoard's Text tab. Text (language-modelling)
 * examples have no prompt of their own: their first half is the prompt.
 */
import type { AnyAdapter } from '../adapters/index.js';
import type { TokenizedExample } from '../data/example.js';
import { reftPositions } from '../data/reftPositions.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { generate } from '../model/generate.js';
import type { DecoderModel } from '../model/model.js';

export interface SampleOptions {
  count: number;
  maxNewTokens: number;
  /** ReFT adapters intervene at these prompt positions (the recipe's adapter.positions). */
  reft?: { positions: string; shareWeights: boolean };
}

/** Indented four spaces: a Markdown code block, so the model's text is shown as written. */
const block = (text: string): string =>
  text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');

export function sampleCompletions(
  model: DecoderModel,
  adapter: AnyAdapter,
  tokenizer: Tokenizer,
  examples: TokenizedExample[],
  opts: SampleOptions,
): string {
  return examples
    .slice(0, opts.count)
    .map((ex, i) => {
      const hasPrompt = ex.promptLength > 0 && ex.promptLength < ex.inputIds.length;
      const prompt = ex.inputIds.slice(0, hasPrompt ? ex.promptLength : Math.ceil(ex.inputIds.length / 2));
      const positions = opts.reft ? reftPositions(prompt.length, opts.reft.positions, { shareWeights: opts.reft.shareWeights }) : undefined;
      const completion = generate(model, prompt, { hooks: adapter, maxNewTokens: opts.maxNewTokens, positions });
      const decode = (ids: number[]): string => tokenizer.decode(ids, { skipSpecialTokens: true });
      return [
        `**Sample ${i + 1}** — prompt:`,
        '',
        block(decode(prompt)),
        '',
        'completion:',
        '',
        block(decode(completion)),
        '',
        'reference:',
        '',
        block(decode(ex.inputIds.slice(prompt.length))),
      ].join('\n');
    })
    .join('\n\n---\n\n');
}
