/** `typetune launch --gpus N [--nnodes … --node-rank … --master-addr … --master-port …] -- TRAIN ARGS`: `train TRAIN ARGS` on N GPUs. */
import type { CommandModule } from 'yargs';
import { LAUNCH_OPTIONS, launchTrain, type LaunchArgs } from '../launch.js';

export const launchCommand: CommandModule<object, LaunchArgs & { gpus: number; _: (string | number)[] }> = {
  command: 'launch',
  describe: 'Train on several GPUs (or machines): one `train` process per GPU, with the arguments after --',
  builder: (y) => y
    .options(LAUNCH_OPTIONS)
    .demandOption('gpus')
    .example('$0 launch --gpus 2 -- --recipe recipes/lora.yaml --set distributed.strategy=zero2', 'two GPUs, ZeRO-2')
    .parserConfiguration({ 'populate--': true }) as never,
  handler: async (args) => {
    const trainArgs = ((args as unknown as { '--'?: (string | number)[] })['--'] ?? []).map(String);
    process.exitCode = await launchTrain(args, trainArgs);
  },
};
