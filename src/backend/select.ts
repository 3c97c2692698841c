/** Backend selection: chosen once per process, by name or `auto`. */
import { tf } from './tf.js';
import { registerCpuKernels } from './cpu/register.js';

export type BackendName = 'cpu' | 'cuda' | 'tensorflow' | 'auto';
export const BACKEND_NAMES: readonly BackendName[] = ['cpu', 'cuda', 'tensorflow', 'auto'];

/** A backend that cannot be used here: bad input (a flag or recipe key), reported as one line. */
export class BackendError extends Error {
  readonly userFacing = true;

  constructor(message: string) {
    super(message);
    this.name = 'BackendError';
  }
}

/** Loaders for backends that live outside tfjs-core; each registers itself with tfjs. */
const loaders: Partial<Record<BackendName, () => Promise<boolean>>> = {
  cuda: async () => {
    try {
      // Resolved at run time: the CUDA backend is optional and absent from CPU-only builds.
      const modulePath = './cuda/register.js';
      const { registerCudaBackend } = (await import(modulePath)) as { registerCudaBackend(): boolean | Promise<boolean> };
      return registerCudaBackend();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return false;
      throw err;
    }
  },
  tensorflow: async () => {
    try {
      await import(/* optional peer */ '@tensorflow/tfjs-node' as string);
      return true;
    } catch {
      return false;
    }
  },
};

/**
 * Make `name` the active tfjs backend. `auto` picks cuda when its addon loads and a GPU is
 * present, else cpu. An explicit backend that cannot load is an error, never a silent cpu.
 */
export async function useBackend(name: BackendName = 'cpu'): Promise<string> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new BackendError(`unknown backend '${String(name)}': valid backends are ${BACKEND_NAMES.join(', ')}`);
  }
  let chosen: string = name;
  if (name === 'auto') chosen = (await loaders.cuda!()) ? 'cuda' : 'cpu';
  else if (name !== 'cpu') {
    const loaded = await loaders[name]!();
    if (!loaded) {
      const how =
        name === 'cuda'
          ? 'build the addon with `npm run build:cuda` on a machine with the CUDA toolkit and a GPU'
          : 'it needs the optional peer @tensorflow/tfjs-node (or -gpu) installed';
      throw new BackendError(`backend '${name}' is not available here (${how}); available: ${(await availableBackends()).join(', ')}`);
    }
  }
  if (chosen === 'cpu') registerCpuKernels();
  if (tf.getBackend() !== chosen) {
    const ok = await tf.setBackend(chosen);
    if (!ok) throw new Error(`backend '${chosen}' failed to initialise`);
  }
  quietCpuBanner();
  return chosen;
}

/** The backends that load on this machine (cpu always; `auto` picks among them). */
export async function availableBackends(): Promise<string[]> {
  const out = ['cpu'];
  for (const name of ['cuda', 'tensorflow'] as const) if (await loaders[name]!().catch(() => false)) out.push(name);
  return out;
}

/** tfjs' CPU backend prints an advert for tfjs-node on first use in Node; typetune's output is its own. */
function quietCpuBanner(): void {
  if (tf.getBackend() === 'cpu') (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
}
