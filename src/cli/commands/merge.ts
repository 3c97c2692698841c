/** `typetune merge --model DIR --adapter DIR --out DIR`: fold a PEFT LoRA adapter into its base model. */
import type { CommandModule } from 'yargs';
import { loadBaseModel } from '../../model/load.js';
import { loadAdapter, LoraAdapter } from '../../adapters/index.js';
import { writeMergedModel } from '../../train/export.js';
import { useBackend } from '../../backend/select.js';
import { AdapterError } from '../../adapters/adapter.js';
import { resolveModelSource } from '../../hub/resolve.js';

interface MergeArgs {
  model: string;
  adapter: string;
  out: string;
}

export const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge',
  describe: 'Fold a PEFT (LoRA) adapter into its base model and write a Hugging Face model folder',
  builder: (y) => y
    .option('model', { type: 'string', demandOption: true, describe: 'base model folder or Hub id org/name[@revision]' })
    .option('adapter', { type: 'string', demandOption: true, describe: 'PEFT adapter folder or Hub id' })
    .option('out', { type: 'string', demandOption: true, describe: 'folder to write (replaced atomically if it exists)' }) as never,
  handler: async (args) => {
    await useBackend('cpu');
    const adapterDir = await resolveModelSource(args.adapter, 'adapter');
    const model = loadBaseModel(await resolveModelSource(args.model, 'model'));
    try {
      const adapter = await loadAdapter(adapterDir, model);
      if (!(adapter instanceof LoraAdapter)) {
        throw new AdapterError(`${args.adapter}: a ReFT intervention acts on activations and cannot be folded into weights; merge takes a PEFT (LoRA) folder`);
      }
      await writeMergedModel(model, adapter, args.out);
      adapter.dispose();
      console.log(`merged ${args.adapter} into ${args.model} → ${args.out}`);
    } finally {
      model.dispose();
    }
  },
};
