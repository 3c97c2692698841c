/**
 * kill -9 at random steps of a 200-step run (checkpoints every 10), each time continued with
 * `--resume`, ends exactly where the uninterrupted run ends: the same loss at every step and
 * the same adapter bytes. The real CLI runs as a child process and is SIGKILLed mid-training.
 * The same for a LoReFT run with dropout, whose masks a resume must redraw.
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

  it("a LoReFT run with dropout 0.1: each step's masks come from its seed, so the resumed run redraws them", async () => {
    const steps = 40;
    const training = `max_steps: ${steps}, save_every_steps: 5`;
    const reft = ['--set', 'adapter={type: loreft, rank: 2, layers: all, positions: f1+l1, dropout: 0.1}', '--set', 'output.export=[]'];
    const whole = tmp('kill-reft-ref');
    const killed = tmp('kill-reft');
    const recipeWhole = tinyRecipe(whole, training);
    const recipeKilled = tinyRecipe(killed, training);
    // Killed past a checkpoint and before the end, so the resumed run redoes the steps since it.
    const at = 12 + Math.floor(Math.random() * 20);
    const [cut, ref] = await Promise.all([
      run(TRAIN, ['--recipe', recipeKilled, ...reft], at),
      run(TRAIN, ['--recipe', recipeWhole, ...reft], null),
    ]);
    expect(cut.signal, cut.stderr).toBe('SIGKILL');
    expect(ref.code, ref.stderr).toBe(0);
    const last = await run(TRAIN, ['--recipe', recipeKilled, ...reft, '--resume'], null);
    expect(last.code, last.stderr).toBe(0);
    const [a, b] = [finalState(whole, steps), finalState(killed, steps)];
    expect(a.adapter.toString('latin1'), 'the interventions were trained').toContain('_comp_block_output_unit_pos_nunit_1#0');
    expect(b.losses).toHaveLength(steps);
    expect(b.losses).toEqual(a.losses);
    expect(Buffer.compare(b.adapter, a.adapter)).toBe(0);
  });
});
