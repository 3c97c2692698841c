/** `typetune export --run DIR --format peft|pyreft|merged --out DIR`: export a run's newest (or a given) checkpoint. */
import type { CommandModule } from 'yargs';
import { exportCheckpoint } from '../../train/exportCheckpoint.js';
import { EXPORT_FORMATS, type ExportFormat } from '../../recipe/types.js';

interface ExportArgs {
  run: string;
  format: ExportFormat;
  out: string;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export',
  describe: 'Export a training run as a PEFT folder, a pyreft folder, or a merged model',
  builder: (y) =>
    y
      .option('run', { type: 'string', demandOption: true, describe: 'run folder (its newest checkpoint) or a checkpoint-<step> folder' })
      .option('format', {
        choices: EXPORT_FORMATS,
        demandOption: true,
        describe: 'peft (LoRA), pyreft (ReFT), merged (LoRA folded into the base model)',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'folder to write (replaced atomically if it exists)' })
      .example('$0 export --run runs/lora --format merged --out runs/lora/merged', '') as never,
  handler: async (args) => {
    const dir = await exportCheckpoint(args.run, args.format, args.out);
    process.stderr.write(`exported ${args.format} to ${dir}\n`);
  },
};
