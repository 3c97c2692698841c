#!/usr/bin/env node
/** `typetune <command>`: generate, inspect, recipe, export, merge, estimate, push, launch (training is the `train` bin). */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { recipeCommand } from './commands/recipe.js';
import { exportCommand } from './commands/export.js';
import { estimateCommand } from './commands/estimate.js';
import { mergeCommand } from './commands/merge.js';
import { pushCommand } from './commands/push.js';
import { launchCommand } from './commands/launch.js';
import { oneLine, reportError } from './run.js';

try {
  await yargs(hideBin(process.argv))
    .scriptName('typetune')
    .command(generateCommand)
    .command(inspectCommand)
    .command(recipeCommand)
    .command(exportCommand)
    .command(mergeCommand)
    .command(estimateCommand)
    .command(pushCommand)
    .command(launchCommand)
    .demandCommand(1, 'name a command: generate, inspect, recipe, export, merge, estimate, push, launch')
    .strict()
    .fail((msg, err) => {
      if (err) reportError(err);
      process.stderr.write(`error: ${oneLine(msg)} (see typetune --help)\n`);
      process.exit(2);
    })
    .help()
    .parseAsync();
} catch (err) {
  reportError(err);
}
