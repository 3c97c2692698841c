/** `typetune estimate --recipe FILE [--set …] [--gpus N]`: the peak memory a recipe needs, before anything is allocated. */
import type { CommandModule } from 'yargs';
import { loadRecipe } from '../../recipe/index.js';
import { estimatePerGpu, estimateRecipe } from '../../train/estimate.js';
import { resolveModelSource } from '../../hub/resolve.js';

interface EstimateArgs {
  recipe: string;
  set: string[];
  json: boolean;
  gpus?: number;
}

export const estimateCommand: CommandModule<object, EstimateArgs> = {
  command: 'estimate',
  describe: "Estimate a recipe's peak memory (weights, adapter states, activations, logits)",
  builder: (y) => y
    .option('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML file' })
    .option('set', { type: 'array', string: true, default: [] as string[], describe: 'override a recipe key (repeatable)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (bytes)' })
    .option('gpus', { type: 'number', describe: 'per GPU of a data-parallel run on N GPUs, sharded as distributed.strategy says' }) as never,
  handler: async (args) => {
    const recipe = loadRecipe(args.recipe, args.set);
    await resolveModelSource(recipe.model.path, 'config'); // a Hub id: its config.json into the cache
    const { memory, text } = args.gpus === undefined ? estimateRecipe(recipe) : estimatePerGpu(recipe, args.gpus);
    console.log(args.json ? JSON.stringify(memory) : text);
  },
};
