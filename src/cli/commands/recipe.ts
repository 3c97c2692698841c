/**
 * `typetune recipe --print-defaults` prints every recipe key with its default and doc;
 * `typetune recipe --check FILE [--set key.path=value …]` validates a recipe and prints it
 * resolved (defaults filled, paths absolute), or every problem with its file:line.
 */
import type { Argv, CommandModule } from 'yargs';
import { loadRecipe, RecipeError, renderDefaultsYaml, renderRecipeYaml } from '../../recipe/index.js';

export interface RecipeArgs {
  'print-defaults'?: boolean;
  check?: string;
  set?: string[];
}

interface Output {
  write(text: string): unknown;
}

/** The command's work, apart from yargs: returns the exit code (2 for bad input, as every typetune command). */
export function runRecipeCommand(args: RecipeArgs, stdout: Output = process.stdout, stderr: Output = process.stderr): number {
  if (args['print-defaults']) {
    stdout.write(renderDefaultsYaml());
    return 0;
  }
  if (args.check === undefined) {
    stderr.write('error: typetune recipe: give --print-defaults, or --check FILE\n');
    return 2;
  }
  try {
    const recipe = loadRecipe(args.check, args.set ?? []);
    stdout.write(`# ${args.check}: valid. Resolved recipe:\n${renderRecipeYaml(recipe)}`);
    return 0;
  } catch (err) {
    if (!(err instanceof RecipeError)) throw err;
    stderr.write(`error: ${err.message}\n`);
    return 2;
  }
}

export const recipeCommand: CommandModule<object, RecipeArgs> = {
  command: 'recipe',
  describe: 'Print the recipe defaults, or check a recipe and print it resolved',
  builder: (yargs: Argv<object>) =>
    yargs
      .option('print-defaults', { type: 'boolean', describe: 'Print every recipe key with its default, commented' })
      .option('check', { type: 'string', describe: 'Validate this recipe file and print it resolved', requiresArg: true })
      .option('set', {
        type: 'string',
        array: true,
        describe: 'Override a key: --set training.learning_rate=1e-4 (value read as YAML)',
        requiresArg: true,
      })
      .conflicts('print-defaults', 'check')
      .example('$0 recipe --print-defaults > my.yaml', 'start a recipe from the defaults')
      .example('$0 recipe --check recipes/lora.yaml --set adapter.r=16', 'validate with an override') as unknown as Argv<RecipeArgs>,
  handler: (argv) => {
    const code = runRecipeCommand({ 'print-defaults': argv['print-defaults'], check: argv.check, set: argv.set?.map(String) });
    if (code !== 0) process.exitCode = code;
  },
};
