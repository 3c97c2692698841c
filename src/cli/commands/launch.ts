/** `typetune launch --gpus N [--nnodes … --node-rank … --master-addr … --master-port …] -- TRAIN ARGS`: `train TRAIN ARGS` on N GPUs. */
import type { CommandModule } from 'yargs';
import { LAUNCH_OPTIONS, LaunchUsageError, launchTrain, type LaunchArgs } from '../launch.js';

type ParsedLaunch = Partial<LaunchArgs> & { _: (string | number)[]; '--'?: (string | number)[]; [option: string]: unknown };

/** Keys yargs puts in the parsed arguments besides the launcher's own options (and their camelCase twins). */
const YARGS_KEYS = new Set(['_', '$0', '--', 'help', 'version']);
const OWN_KEYS = new Set(Object.keys(LAUNCH_OPTIONS).flatMap((k) => [k, k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())]));

/**
 * train's arguments, from after `--`; anything meant for train but written before `--` is
 * refused with the usage, naming it (yargs' strict mode would only call it an unknown argument).
 * A leading `train` after `--` (as torchrun takes the script) is accepted and dropped.
 */
function trainArguments(args: ParsedLaunch): string[] {
  const stray = [
    ...args._.slice(1).map(String),
    ...Object.keys(args)
      .filter((k) => !YARGS_KEYS.has(k) && !OWN_KEYS.has(k))
      .filter((k) => !/[A-Z]/.test(k))
      .map((k) => `--${k}`),
  ];
  if (stray.length > 0)
    throw new LaunchUsageError(
      `${stray.join(' ')}: not ${stray.length > 1 ? 'arguments' : 'an argument'} of launch (train's arguments go after --)`,
    );
  if (args.gpus === undefined) throw new LaunchUsageError('--gpus N is required');
  const rest = (args['--'] ?? []).map(String);
  if (rest[0] === 'train') rest.shift();
  if (rest.length === 0) throw new LaunchUsageError("nothing to train: give train's arguments after --");
  return rest;
}

export const launchCommand: CommandModule<object, ParsedLaunch> = {
  command: 'launch',
  describe: 'Train on several GPUs (or machines): one `train` process per GPU, with the arguments after --',
  builder: (y) =>
    y
      .options(LAUNCH_OPTIONS)
      // Not strict: train's options written before `--` reach trainArguments, which says where they go.
      .strict(false)
      .example('$0 launch --gpus 2 -- --recipe recipes/lora.yaml --set distributed.strategy=zero2', 'two GPUs, ZeRO-2')
      .parserConfiguration({ 'populate--': true }) as never,
  handler: async (args) => {
    const trainArgs = trainArguments(args);
    process.exitCode = await launchTrain(args as LaunchArgs & { gpus: number }, trainArgs);
  },
};
