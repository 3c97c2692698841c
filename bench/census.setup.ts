/**
 * Kernel census: records every tfjs kernel name that test code runs (forward and gradients),
 * to check that the cuda backend registers all of them. Used by bench/census.config.ts.
 */
import { appendFileSync } from 'node:fs';
import { afterAll } from 'vitest';
import { tf } from '../src/backend/tf.js';

const seen = new Set<string>();
const engine = tf.engine() as unknown as { runKernel: (name: string, ...rest: unknown[]) => unknown };
const original = engine.runKernel.bind(engine);
engine.runKernel = (name: string, ...rest: unknown[]) => {
  seen.add(name);
  return original(name, ...rest);
};
afterAll(() => {
  appendFileSync(process.env.CENSUS_OUT ?? '/tmp/kernel-census.txt', [...seen].join('\n') + '\n');
});
