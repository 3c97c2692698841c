/** `typetune merge --model DIR --adapter DIR --out DIR`: fold a PEFT LoRA adapter into its base model. */
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { loadBaseModel } from '../../model/load.js';
import { kindOf, loadAdapter } from '../../adapters/index.js';
import { kindsExporting } from '../../adapters/kinds.js';
import { writeMergedModel } from '../../train/export.js';
import { checkExportTarget } from '../../train/exportTarget.js';
import { findNonFinite } from '../../train/finite.js';
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
  builder: (y) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'base model folder or Hub id org/name[@revision]' })
      .option('adapter', { type: 'string', demandOption: true, describe: 'PEFT adapter folder or Hub id' })
      .option('out', {
        type: 'string',
        demandOption: true,
        describe: 'folder to write: a new or empty one, or an earlier export (replaced atomically)',
      }) as never,
  handler: async (args) => {
    await useBackend('cpu');
    const adapterDir = await resolveModelSource(args.adapter, 'adapter');
    const modelDir = await resolveModelSource(args.model, 'model');
    // The merged folder replaces --out whole: never the model or adapter it reads, nor anything else of the user's.
    const out = path.resolve(args.out);
    checkExportTarget(out, [
      { what: 'the --model folder', dir: modelDir, andInside: true },
      { what: 'the --adapter folder', dir: adapterDir, andInside: true },
    ]);
    const model = loadBaseModel(modelDir);
    try {
      const adapter = await loadAdapter(adapterDir, model);
      try {
        const kind = kindOf(adapter);
        if (!kind.mergedWeights) {
          throw new AdapterError(
            `${args.adapter}: typetune does not fold ${kind.title} adapters into the base weights; merge takes ${kindsExporting('merged')} adapters`,
          );
        }
        const bad = findNonFinite(
          [...adapter.variables].map(([name, v]): [string, ArrayLike<number>] => [name, v.dataSync() as Float32Array]),
        );
        if (bad)
          throw new AdapterError(
            `${args.adapter}: adapter weight '${bad.name}' holds ${bad.value} (element ${bad.index}); a diverged adapter is not merged, and ${out} was not written`,
          );
        await writeMergedModel(model, adapter, out);
      } finally {
        adapter.dispose();
      }
      console.log(`merged ${args.adapter} into ${args.model} → ${out}`);
    } finally {
      model.dispose();
    }
  },
};
