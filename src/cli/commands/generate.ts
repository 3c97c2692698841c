/** `typetune generate --model DIR --prompt "…" [--chat] [--adapter DIR [--positions f1+l1]]`: text continuation, streamed. */
import type { CommandModule } from 'yargs';
import { loadModel } from '../../api/loadModel.js';
import type { BackendName } from '../../backend/select.js';
import { AdapterError, parsePositions } from '../../adapters/index.js';
import { checkGenerateOptions, GenerateOptionError } from '../../model/generate.js';

interface GenerateArgs {
  model: string;
  prompt: string;
  chat: boolean;
  adapter?: string;
  positions?: string;
  backend: BackendName;
  'max-new-tokens': number;
  temperature: number;
  'top-k'?: number;
  'top-p'?: number;
  seed: number;
  cache: boolean;
}

/** The flag each generate option comes from, for its one-line error. */
const FLAGS = { maxNewTokens: '--max-new-tokens', temperature: '--temperature', topK: '--top-k', topP: '--top-p', seed: '--seed' } as const;

export const generateCommand: CommandModule<object, GenerateArgs> = {
  command: 'generate',
  describe: 'Generate text from a model folder (optionally with an adapter)',
  builder: (y) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Hugging Face model folder or Hub id org/name[@revision]' })
      .option('prompt', { type: 'string', demandOption: true, describe: 'the prompt text' })
      .option('chat', { type: 'boolean', default: false, describe: "render the prompt as a user turn with the model's chat template" })
      .option('adapter', { type: 'string', describe: 'PEFT or pyreft folder (or Hub id) to apply' })
      .option('positions', {
        type: 'string',
        describe:
          'pyreft adapter: the prompt positions it was trained on (f1+l1, l1 …); typetune exports record them, folders pyreft wrote do not',
      })
      .option('backend', { choices: ['cpu', 'cuda', 'tensorflow', 'auto'] as const, default: 'cpu' as const })
      .option('max-new-tokens', { type: 'number', default: 64, describe: 'an integer ≥ 1' })
      .option('temperature', { type: 'number', default: 0, describe: '0 = greedy' })
      .option('top-k', { type: 'number', describe: 'an integer ≥ 0 (0 = off)' })
      .option('top-p', { type: 'number', describe: 'in (0, 1] (1 = off)' })
      .option('seed', { type: 'number', default: 0 })
      .option('cache', {
        type: 'boolean',
        default: true,
        describe: 'use the KV cache (--no-cache re-runs the whole sequence each step)',
      }) as never,
  handler: async (args) => {
    for (const flag of [...Object.values(FLAGS), '--prompt', '--model', '--adapter', '--positions', '--backend']) {
      const value: unknown = args[flag.slice(2) as keyof GenerateArgs];
      // yargs collects a repeated flag into a list: say so instead of guessing which was meant.
      if (Array.isArray(value)) throw new GenerateOptionError(`${flag} is given ${value.length} times (${value.join(', ')}); give it once`);
    }
    const sampling = {
      maxNewTokens: args['max-new-tokens'],
      temperature: args.temperature,
      topK: args['top-k'],
      topP: args['top-p'],
      seed: args.seed,
    };
    // Every flag is checked before the model loads, so a typo costs nothing.
    checkGenerateOptions(sampling, (option) => FLAGS[option]);
    if (args.positions !== undefined) {
      if (args.adapter === undefined) throw new AdapterError('--positions applies to a pyreft adapter; give --adapter too');
      parsePositions(args.positions, '--positions');
    }
    const model = await loadModel(args.model, {
      backend: args.backend,
      adapter: args.adapter,
      reft: args.positions === undefined ? undefined : { positions: args.positions },
    });
    const tok = await model.tokenizer();
    const text = args.chat ? tok.applyChatTemplate([{ role: 'user', content: args.prompt }], { addGenerationPrompt: true }) : args.prompt;
    const ids = tok.encode(text, { addSpecialTokens: !args.chat });
    if (ids.length === 0)
      throw new GenerateOptionError('--prompt gives no token (an empty prompt, and the tokenizer adds no BOS); give some text');
    const generated: number[] = [];
    let shown = '';
    await model.generate(ids, {
      ...sampling,
      useCache: args.cache,
      onToken: (id) => {
        generated.push(id);
        const now = tok.decode(generated, { skipSpecialTokens: true });
        // Byte-level tokens can end mid-character: wait for the rest before printing.
        if (now.endsWith('\uFFFD')) return;
        process.stdout.write(now.slice(shown.length));
        shown = now;
      },
    });
    process.stdout.write('\n');
    model.dispose();
  },
};
