/** `typetune push --run DIR | --adapter DIR --repo org/name [--private] [--revision BRANCH]`: publish an export on the Hub. */
import type { CommandModule } from 'yargs';
import { pushExport, pushRun } from '../../hub/push.js';
import { HubError } from '../../hub/errors.js';

interface PushArgs {
  run?: string;
  adapter?: string;
  repo: string;
  private: boolean;
  revision?: string;
  format?: 'peft' | 'pyreft' | 'merged';
}

export const pushCommand: CommandModule<object, PushArgs> = {
  command: 'push',
  describe: 'Upload a PEFT, pyreft or merged export to the Hugging Face Hub with a generated model card',
  builder: (y) =>
    y
      .option('run', { type: 'string', describe: 'run folder: pushes its export (peft or pyreft, else merged) with its recipe and losses' })
      .option('adapter', { type: 'string', describe: 'an export folder (PEFT, pyreft or merged) to push' })
      .option('repo', { type: 'string', demandOption: true, describe: 'Hub repository org/name (created when missing)' })
      .option('private', { type: 'boolean', default: false, describe: 'create the repository private' })
      .option('revision', { type: 'string', describe: 'branch to commit to (created when missing; default main)' })
      .option('format', { choices: ['peft', 'pyreft', 'merged'] as const, describe: 'with --run: which export to push' })
      .conflicts('run', 'adapter')
      .example('$0 push --run runs/lora --repo me/tiny-llama-lora', '')
      .example('HF_TOKEN=hf_… $0 push --adapter runs/loreft/pyreft --repo me/loreft --private', '') as never,
  handler: async (args) => {
    if (!args.run && !args.adapter) throw new HubError('push: give --run DIR (a training run) or --adapter DIR (an export folder)');
    const opts = { repo: args.repo, private: args.private, revision: args.revision, format: args.format };
    process.stderr.write(`pushing ${args.run ?? args.adapter} to ${args.repo}…\n`);
    const r = args.run ? await pushRun(args.run, opts) : await pushExport(args.adapter!, opts);
    console.log(`pushed ${r.files.length} files (${r.files.join(', ')}) to ${r.repo}@${r.revision}: ${r.url}`);
  },
};
