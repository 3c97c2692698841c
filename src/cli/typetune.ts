#!/usr/bin/env node
/** `typetune <command>`: train (also the `train` bin), generate, inspect, recipe, export, merge, estimate, push, launch. */
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
import { trainCommand } from './commands/train.js';
import { packageVersion } from './version.js';
import { oneLine, reportError } from './run.js';

try {
  await yargs(hideBin(process.argv))
    .scriptName('typetune')
    .command(trainCommand)
    .command(generateCommand)
    .command(inspectCommand)
    .command(recipeCommand)
    .command(exportCommand)
    .command(mergeCommand)
    .command(estimateCommand)
    .command(pushCommand)
    .command(launchCommand)
    .demandCommand(1, 'name a command: train, generate, inspect, recipe, export, merge, estimate, push, launch')
    .strict()
    .fail((msg, err) => {
      if (err) reportError(err);
      process.stderr.write(`error: ${oneLine(msg)} (see typetune --help)\n`);
      process.exit(2);
    })
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .parseAsync();
} catch (err) {
  reportError(err);
}
