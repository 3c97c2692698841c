/**
 * kill -9 at random steps of a 200-step run (checkpoints every 10), each time continued with
 * `--resume`, ends exactly where the uninterrupted run ends: the same loss at every step and
 * the same adapter bytes. The real CLI runs as a child process and is SIGKILLed mid-training.
 */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { repoRoot } from '../helpers.js';
import { tinyRecipe, tmp } from '../cliHarness.js';
import { finalState, trainKilledAt as run } from '../killRun.js';

const TRAIN = [path.join(repoRoot, 'dist', 'cli', 'train.js')];

describe('kill -9 and --resume', () => {
  it('reproduces the uninterrupted run exactly', async () => {
    const training = 'max_steps: 200, save_every_steps: 10';
    const whole = tmp('kill-ref');
    const killed = tmp('kill');
    const recipeWhole = tinyRecipe(whole, training);
    const recipeKilled = tinyRecipe(killed, training);
    // Three kills at random steps, at least 15 apart so each run gets past a checkpoint.
    const kills = [0, 1, 2].map((i) => 20 + i * 55 + Math.floor(Math.random() * 40)).sort((a, b) => a - b);

    const chain = (async () => {
      const log: string[] = [];
      let resume = false;
      for (const at of kills) {
        const r = await run(TRAIN, ['--recipe', recipeKilled, ...(resume ? ['--resume'] : [])], at);
        expect(r.signal, r.stderr).toBe('SIGKILL');
        log.push(`killed at step ${r.lastStep}`);
        resume = true;
      }
      const last = await run(TRAIN, ['--recipe', recipeKilled, '--resume'], null);
      expect(last.code, last.stderr).toBe(0);
      return log;
    })();
    const reference = run(TRAIN, ['--recipe', recipeWhole], null);
    const [log, ref] = await Promise.all([chain, reference]);
    expect(ref.code, ref.stderr).toBe(0);
    expect(log).toHaveLength(3);

    const a = finalState(whole, 200);
    const b = finalState(killed, 200);
    expect(b.losses).toHaveLength(200);
    expect(b.losses).toEqual(a.losses);
    expect(Buffer.compare(b.adapter, a.adapter)).toBe(0);
  });
});
