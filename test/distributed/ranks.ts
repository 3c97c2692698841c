/** Test helpers: N Trainers of one recipe, one per loopback rank, trained concurrently in this process. */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Trainer, type TrainOptions, type TrainSummary } from '../../src/train/trainer.js';
import { loopbackGroup } from '../../src/distributed/loopback.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { fixture, repoRoot } from '../helpers.js';

/** A TCP port nothing listens on now (the OS picks it), for a rendezvous. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

export const tmp = (name: string) => mkdtempSync(path.join(os.tmpdir(), `typetune-dist-${name}-`));

/**
 * LoRA on the tiny Llama with dropout, clipping, weight decay and 6 micro-batches a step (so 1, 2
 * and 3 ranks all split a step evenly, and 2 ranks take 3 micro-batches each).
 */
export function distRecipe(dir: string, training: Record<string, unknown> = {}, more: Record<string, unknown> = {}) {
  return {
    model: { path: fixture('tiny-llama'), backend: 'cpu' },
    adapter: { type: 'lora', r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj', 'down_proj'] },
    data: { path: path.join(repoRoot, 'datasets/alice_qa.jsonl'), format: 'prompt_completion', max_length: 32 },
    training: {
      max_steps: 10,
      batch_size: 1,
      gradient_accumulation_steps: 6,
      learning_rate: 1e-2,
      lr_scheduler: 'cosine',
      warmup_steps: 1,
      save_every_steps: 5,
      max_grad_norm: 1.0,
      seed: 7,
      weight_decay: 0.01,
      ...training,
    },
    logging: { every_steps: 1, tensorboard: false },
    output: { dir, export: ['peft'] },
    ...more,
  };
}

/** Train `recipe` on `world` loopback ranks (world 0: one process with no communicator); rank 0's summary first. */
export async function trainRanks(
  world: number,
  recipe: object,
  overrides: string[] = [],
  opts: TrainOptions = {},
): Promise<TrainSummary[]> {
  if (world === 0) {
    const t = await Trainer.fromRecipe(recipe, overrides);
    try {
      return [await t.train({ handleSignals: false, ...opts })];
    } finally {
      t.dispose();
    }
  }
  const comms = loopbackGroup(world, { timeoutMs: 60_000 });
  const trainers = await Promise.all(comms.map((communicator) => Trainer.fromRecipe(recipe, overrides, { communicator })));
  try {
    return await Promise.all(trainers.map((t) => t.train({ handleSignals: false, ...opts })));
  } finally {
    for (const t of trainers) t.dispose();
    for (const c of comms) c.destroy();
  }
}

/** A safetensors file's tensors as plain arrays. */
export function readTensors(file: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(file);
  try {
    return new Map(f.keys().map((k) => [k, f.readFloat32(k).data]));
  } finally {
    f.close();
  }
}
