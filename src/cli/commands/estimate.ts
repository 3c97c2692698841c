/** `typetune estimate --recipe FILE [--set …]`: the peak memory a recipe needs, before anything is allocated. */
import type { CommandModule } from 'yargs';
import { loadRecipe } from '../../recipe/index.js';
import { estimateRecipe } from '../../train/estimate.js';
import { resolveModelSource } from '../../hub/resolve.js';

interface EstimateArgs {
  recipe: string;
  set: string[];
  json: boolean;
}

export const estimateCommand: CommandModule<object, EstimateArgs> = {
  command: 'estimate',
  describe: "Estimate a recipe's peak memory (weights, adapter states, activations, logits)",
  builder: (y) => y
    .option('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML file' })
    .option('set', { type: 'array', string: true, default: [] as string[], describe: 'override a recipe key (repeatable)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (bytes)' }) as never,
  handler: async (args) => {
    const recipe = loadRecipe(args.recipe, args.set);
    await resolveModelSource(recipe.model.path, 'config'); // a Hub id: its config.json into the cache
    const { memory, text } = estimateRecipe(recipe);
    console.log(args.json ? JSON.stringify(memory) : text);
  },
};
