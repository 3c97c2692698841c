#!/usr/bin/env node
/**
 * `train --recipe FILE [--set key=value …] [--resume [DIR] | --overwrite] [--json]`: runs a
 * recipe with the Trainer. Progress goes to stderr; `--json` prints one JSON object per event on
 * stdout instead, leaving stderr to warnings and errors. A diverged run exits 3.
 * A step whose memory estimate exceeds what the GPU has free is refused before step 1 (exit 2;
 * `--force` trains anyway); running out of device memory mid-run exits 4, the last checkpoint intact.
 * Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint, prints the command
 * that resumes, and exits 130 (143).
 * `--gpus N` starts one such process per GPU (src/cli/launch.ts); a process started with RANK and
 * WORLD_SIZE (by that launcher, or torchrun-style by hand) joins its job and trains its share.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { Trainer } from '../train/trainer.js';
import { attachReporter } from '../train/progress.js';
import { estimatePerGpu, estimateRecipe } from '../train/estimate.js';
import { oneLine, reportError, userError } from './run.js';
import { signalExitCode } from '../train/signals.js';
import { formatBytes } from '../model/memory.js';
import { loadRecipe } from '../recipe/load.js';
import { useBackend } from '../backend/select.js';
import { rankEnv } from '../distributed/rendezvous.js';
import { joinJob } from '../distributed/join.js';
import type { Communicator } from '../distributed/communicator.js';
import { LAUNCH_OPTIONS, launchTrain } from './launch.js';
import { packageVersion } from './version.js';
import { checkRunFolderOptions } from '../train/runFolder.js';

export async function trainCli(argv: string[], scriptName = 'train'): Promise<number> {
  const args = await yargs(argv)
    .scriptName(scriptName)
    .usage('$0 --recipe FILE [--set key=value …] [--resume [DIR] | --overwrite] [--json]')
    .option('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML file, e.g. recipes/lora.yaml' })
    .option('set', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'override a recipe key, e.g. --set training.max_steps=20 (repeatable)',
    })
    .option('resume', {
      type: 'string',
      describe: "continue from a checkpoint folder, or a run folder's newest (default: the newest in output.dir)",
    })
    .option('overwrite', {
      type: 'boolean',
      default: false,
      describe: 'start afresh in an output.dir that holds a run, moving that run to <dir>.old-<time> (nothing is deleted)',
    })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'print one JSON object per event on stdout; stderr then carries only warnings and errors',
    })
    .option('force', {
      type: 'boolean',
      default: false,
      describe: 'train even when the memory estimate exceeds what the GPU has free (refused before step 1 otherwise)',
    })
    .options(LAUNCH_OPTIONS)
    .example('$0 --recipe recipes/loreft.yaml', 'train as the recipe says')
    .example('$0 --recipe recipes/lora.yaml --set training.max_steps=20 --resume', 'continue the last run')
    .example('$0 --recipe recipes/lora.yaml --gpus 2', 'one process per GPU; distributed.strategy says how they share')
    .strict()
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`error: ${oneLine(msg)} (see ${scriptName} --help)\n`);
      process.exit(2);
    })
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .parseAsync();
  const recipe = args.recipe;
  if (!recipe) {
    process.stderr.write(`error: --recipe needs a file name (see ${scriptName} --help)\n`);
    return 2;
  }
  const job = rankEnv();
  if (args.gpus !== undefined && !job) return launchTrain({ ...args, gpus: args.gpus }, argv);
  let trainer: Trainer;
  let communicator: Communicator | undefined;
  try {
    checkRunFolderOptions({ resume: args.resume !== undefined, overwrite: args.overwrite });
    if (job) {
      // Join before building the Trainer: the backend must be up to make the NCCL group.
      const r = loadRecipe(recipe, args.set);
      await useBackend(r.model.backend);
      communicator = await joinJob(job, r.distributed.timeout_s * 1000);
    }
    trainer = await Trainer.fromRecipe(recipe, args.set, { communicator });
  } catch (err) {
    communicator?.destroy();
    // Setting up reads the user's recipe, model, data and backend: what fails here is their input.
    if (process.env.TYPETUNE_DEBUG) throw err;
    process.stderr.write(`error: ${userError(err)?.message ?? oneLine((err as Error).message ?? String(err))}\n`);
    return 2;
  }
  // Rank 0 reports the run; every rank reports its own memory (they differ under ZeRO).
  if (trainer.isLeader)
    attachReporter(trainer, { json: args.json, err: process.stderr, out: process.stdout, everySteps: trainer.recipe.logging.every_steps });
  if (job)
    trainer.on('end', (e) =>
      process.stderr.write(`rank ${job.rank} of ${job.worldSize}: peak memory ${formatBytes(e.measuredPeakBytes)}, ${e.measuredPeakOf}\n`),
    );
  // Before step 1, what the step's peak memory will hold (the end line sets the measured peak beside it).
  if (!args.json && trainer.isLeader) {
    trainer.on('start', () => {
      const at = { seqLen: trainer.longestSequence };
      const { text } = job ? estimatePerGpu(trainer.recipe, job.worldSize, at) : estimateRecipe(trainer.recipe, at);
      process.stderr.write(`memory estimate at the longest row (${trainer.longestSequence} tokens):\n${text}\n`);
    });
  }
  // `--resume` alone arrives as '' (latest checkpoint in output.dir).
  const resume = args.resume === undefined ? undefined : args.resume === '' ? true : args.resume;
  try {
    const summary = await trainer.train({ resume, overwrite: args.overwrite, force: args.force });
    if (summary.pushed)
      process.stderr.write(`pushed ${summary.pushed.folder} to ${summary.pushed.repo}@${summary.pushed.revision}: ${summary.pushed.url}\n`);
    return summary.interrupted ? signalExitCode(summary.interrupted) : 0;
  } catch (err) {
    const known = userError(err);
    if (!known || process.env.TYPETUNE_DEBUG) throw err;
    process.stderr.write(`error: ${known.message}\n`);
    return known.code;
  } finally {
    trainer.dispose();
    communicator?.destroy();
  }
}

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  trainCli(hideBin(process.argv)).then((code) => process.exit(code), reportError);
}
