/**
 * `typetune estimate --recipe FILE [--set …] [--fit 80GiB] [--gpus N] [--json]`: the peak memory a
 * recipe's training step needs, before the model is loaded — a table of what is live at the
 * peak (frozen weights, adapter parameters, gradients, AdamW moments, activations, logits,
 * workspace) — with `--fit`, the largest batch size that fits in that much memory, and with
 * `--gpus N`, what one GPU of a data-parallel run holds under distributed.strategy.
 */
import type { CommandModule } from 'yargs';
import { loadRecipe } from '../../recipe/index.js';
import { estimatePerGpu, estimateRecipe, fitBatch, type EstimateBackend, type Fit, type FitAnswer } from '../../train/estimate.js';
import { resolveModelSource } from '../../hub/resolve.js';
import { useBackend } from '../../backend/select.js';
import { formatBytes } from '../../model/memory.js';
import { parseMemorySize } from '../memorySize.js';
import type { Recipe } from '../../recipe/types.js';

interface EstimateArgs {
  recipe: string;
  set: string[];
  json: boolean;
  gpus?: number;
  fit?: string;
}

/**
 * Trace on the backend that will train. A recipe that asks for cuda where it cannot load is
 * still estimated for cuda: traced on cpu, stored by the cuda rules (the estimate says so).
 */
async function traceBackend(recipe: Recipe): Promise<EstimateBackend> {
  if (recipe.model.backend === 'cuda') {
    try {
      await useBackend('cuda');
    } catch {
      await useBackend('cpu');
    }
    return 'cuda';
  }
  return (await useBackend(recipe.model.backend === 'auto' ? 'auto' : 'cpu')) === 'cuda' ? 'cuda' : 'cpu';
}

export const estimateCommand: CommandModule<object, EstimateArgs> = {
  command: 'estimate',
  describe: "Estimate a recipe's peak memory (weights, adapter and AdamW state, activations, logits); --fit finds the largest batch",
  builder: (y) =>
    y
      .option('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML file' })
      .option('set', { type: 'array', string: true, default: [] as string[], describe: 'override a recipe key (repeatable)' })
      .option('gpus', { type: 'number', describe: 'per GPU of a data-parallel run on N GPUs, sharded as distributed.strategy says' })
      .option('fit', {
        type: 'string',
        describe:
          'device memory, e.g. 80GiB, 80GB, 24576MiB: print the largest batch size that fits, and whether it needs activation checkpointing',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (bytes)' }) as never,
  handler: async (args) => {
    const budget = args.fit === undefined ? null : parseMemorySize(args.fit, '--fit');
    const recipe = loadRecipe(args.recipe, args.set);
    await resolveModelSource(recipe.model.path, 'config'); // a Hub id: its config.json into the cache
    const backend = await traceBackend(recipe);
    const { memory, text } = args.gpus === undefined ? estimateRecipe(recipe, { backend }) : estimatePerGpu(recipe, args.gpus, { backend });
    if (budget === null) {
      console.log(args.json ? JSON.stringify(memory) : text);
      return;
    }
    const fit = fitBatch(recipe, budget, backend);
    if (args.json) {
      const brief = (f: Fit | null) => f && { batchSize: f.batchSize, checkpointing: f.checkpointing, deviceTotal: f.estimate.deviceTotal };
      console.log(
        JSON.stringify({
          ...memory,
          fit: {
            budget,
            best: brief(fit.best),
            withoutCheckpointing: brief(fit.withoutCheckpointing),
            withCheckpointing: brief(fit.withCheckpointing),
          },
        }),
      );
      return;
    }
    console.log(text);
    console.log(fitLine(fit, budget, recipe.data.max_length));
  },
};

/** The answer to --fit in one line: the largest batch, whether it needs checkpointing, what the other choice gives. */
function fitLine(fit: FitAnswer, budget: number, seqLen: number): string {
  const { best, withoutCheckpointing: off } = fit;
  if (!best)
    return `nothing fits ${formatBytes(budget)}: even a batch of 1 × ${seqLen} tokens with activation checkpointing needs more; lower data.max_length or quantise the model (model.quantization)`;
  const needed = `${formatBytes(best.estimate.deviceTotal)} of ${formatBytes(budget)}`;
  if (!best.checkpointing) {
    return `fits: batch size ${best.batchSize} × ${seqLen} tokens without activation checkpointing (${needed}); checkpointing gains no larger batch`;
  }
  const other = off ? `without it at most ${off.batchSize}` : 'without it not even a batch of 1 fits';
  return `fits: batch size ${best.batchSize} × ${seqLen} tokens with activation checkpointing (model.activation_checkpointing: true; ${needed}); ${other}`;
}
