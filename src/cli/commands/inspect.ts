/** `typetune inspect DIR`: architecture, parameter count, and memory for weights and a LoRA fine-tune. */
import type { CommandModule } from 'yargs';
import { inspectModel } from '../../model/inspect.js';
import { resolveModelSource } from '../../hub/resolve.js';

interface InspectArgs {
  dir: string;
  'lora-r': number;
  batch: number;
  seq: number;
  checkpointing: boolean;
  weights: 'f32' | 'bf16' | 'nf4';
  json: boolean;
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect <dir>',
  describe: 'Describe a Hugging Face model folder: family, sizes, parameters, memory',
  builder: (y) =>
    y
      .positional('dir', {
        type: 'string',
        demandOption: true,
        describe: 'model folder (config.json) or Hub id org/name[@revision] (only its config.json is fetched)',
      })
      .option('lora-r', { type: 'number', default: 16, describe: 'LoRA rank for the fine-tune estimate' })
      .option('batch', { type: 'number', default: 8, describe: 'sequences per step' })
      .option('seq', { type: 'number', default: 1024, describe: 'tokens per sequence' })
      .option('checkpointing', { type: 'boolean', default: false, describe: 'activation checkpointing' })
      .option('weights', { choices: ['f32', 'bf16', 'nf4'] as const, default: 'bf16' as const, describe: 'base weight storage' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }) as never,
  handler: async (args) => {
    const report = inspectModel(await resolveModelSource(args.dir, 'config'), {
      loraRank: args['lora-r'],
      batchSize: args.batch,
      seqLen: args.seq,
      checkpointing: args.checkpointing,
      weights: args.weights,
    });
    if (args.json) {
      const s = report.spec;
      console.log(
        JSON.stringify({
          family: s.modelType,
          layers: s.numLayers,
          hidden: s.hiddenSize,
          heads: s.numHeads,
          kvHeads: s.numKvHeads,
          headDim: s.headDim,
          vocab: s.vocabSize,
          parameters: report.parameters,
        }),
      );
    } else console.log(report.text);
  },
};
