/**
 * `typetune train …`: the `train` bin under the package's own name (`train` on PATH is a
 * generic name that another package may take). yargs leaves the arguments alone here: the
 * train CLI parses them itself, so both spellings accept exactly the same flags and help.
 */
import type { CommandModule } from 'yargs';

export const trainCommand: CommandModule = {
  command: 'train',
  describe: 'Train as a recipe says (the same as the `train` bin: typetune train --help)',
  builder: (y) => y.help(false).version(false).strict(false),
  handler: async () => {
    // Imported here, not at the top: the other commands start without loading the trainer.
    const { trainCli } = await import('../train.js');
    const at = process.argv.indexOf('train', 2);
    process.exitCode = await trainCli(process.argv.slice(at + 1), 'typetune train');
  },
};
