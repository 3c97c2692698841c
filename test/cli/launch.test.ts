/**
 * `typetune launch` written wrong — no --gpus, nothing after --, train's arguments before --,
 * another launcher's flag — is one line naming what is wrong and the real usage, exit 2, with
 * nothing started and nothing written; `-- train --recipe …` (torchrun's habit) is accepted.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectOneLineError, runBuilt, snapshot, tmp } from '../cliHarness.js';
import { repoRoot } from '../helpers.js';

const USAGE =
  'usage: typetune launch --gpus N [--nnodes M --node-rank I --master-addr HOST --master-port PORT] -- --recipe FILE [--set key=value …]';
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('typetune launch: usage errors are one line with the usage', () => {
  const cases: Array<[args: string[], problem: string]> = [
    [['launch'], '--gpus N is required'],
    [['launch', '--gpus', '2'], "nothing to train: give train's arguments after --"],
    [['launch', '--gpus', '2', '--'], "nothing to train: give train's arguments after --"],
    [['launch', '--gpus', '2', '--', 'train'], "nothing to train: give train's arguments after --"],
    [['launch', '--gpus', '2', '--recipe', 'recipe.yaml'], "--recipe: not an argument of launch (train's arguments go after --)"],
    [
      ['launch', '--gpus', '2', 'train', '--recipe', 'recipe.yaml'],
      "train --recipe: not arguments of launch (train's arguments go after --)",
    ],
    [
      ['launch', '--nproc-per-node', '2', '--', '--recipe', 'recipe.yaml'],
      "--nproc-per-node: not an argument of launch (train's arguments go after --)",
    ],
    [['launch', '--gpus', '2', '--', '--set', 'training.max_steps=1'], "no recipe to train: give train's --recipe FILE"],
  ];
  it.each(cases)('%j', (args, problem) => {
    const dir = tmp('launch-usage');
    writeFileSync(
      path.join(dir, 'recipe.yaml'),
      `model: {path: ${path.join(repoRoot, 'models/tiny-llama')}, backend: cpu}\ndata: {path: ${path.join(repoRoot, 'package.json')}}\n`,
    );
    const before = snapshot(dir);
    expectOneLineError(runBuilt('typetune', args, dir), new RegExp(`^error: ${escapeRegExp(problem)}; ${escapeRegExp(USAGE)}$`));
    expect(snapshot(dir)).toEqual(before);
  });

  it("-- train --recipe …: the word train is dropped and the rest is train's (its recipe is checked before any rank starts)", () => {
    const dir = tmp('launch-train-word');
    writeFileSync(
      path.join(dir, 'recipe.yaml'),
      `model: {path: ${path.join(repoRoot, 'models/tiny-llama')}, backend: cpu}\ndata: {path: ${path.join(repoRoot, 'package.json')}}\n`,
    );
    const before = snapshot(dir);
    const r = runBuilt(
      'typetune',
      ['launch', '--gpus', '2', '--', 'train', '--recipe', 'recipe.yaml', '--set', 'training.max_stepz=1'],
      dir,
    );
    expectOneLineError(r, /^error: --set training\.max_stepz=1: training\.max_stepz: unknown key; did you mean max_steps\?/);
    expect(snapshot(dir)).toEqual(before);
  });
});
