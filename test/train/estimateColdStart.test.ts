import { describe, it, expect } from 'vitest';
import { tf } from '../../src/backend/tf.js';
import { loadRecipe } from '../../src/recipe/index.js';
import { estimateMemory } from '../../src/train/estimate.js';
import { repoRoot } from '../helpers.js';

// No useBackend here, on purpose: a library user may ask for an estimate before anything has
// made tfjs choose its backend (bench/context.ts --predict did, and got the composed path's 8×).
describe('estimateMemory before any backend is chosen', () => {
  it('models cuda the same as once the backend is up', () => {
    expect(tf.getBackend()).toBeUndefined(); // the condition under test (vitest gives each file its own process)
    const recipe = (seed: number) =>
      loadRecipe(`${repoRoot}/recipes/lora.yaml`, ['model.backend=cuda', 'model.precision=bf16-mixed', `training.seed=${seed}`]);
    const cold = estimateMemory(recipe(1));
    // Another seed is another cached trace (the seed is in its key) of the same memory, now traced warm.
    const warm = estimateMemory(recipe(2));
    expect(cold.breakdown).toEqual(warm.breakdown);
    expect(cold.total).toBe(warm.total);
  });
});
