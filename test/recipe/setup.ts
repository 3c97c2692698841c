/** A scratch project for recipe tests: recipes/ with a recipe file, a model folder and a data file. */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadRecipe, type LoadRecipeOptions } from '../../src/recipe/index.js';

export interface Project {
  /** The working directory (recipe paths in messages are relative to it). */
  root: string;
  /** Writes recipes/<name> and returns its path relative to root. */
  write(text: string, name?: string): string;
  /** loadRecipe with cwd = root. */
  load(text: string, overrides?: string[], options?: LoadRecipeOptions): ReturnType<typeof loadRecipe>;
  /** The message loadRecipe throws, or fails the test if it does not throw. */
  error(text: string, overrides?: string[], options?: LoadRecipeOptions): string;
}

/** A minimal valid recipe, as the lines of a file (model.path and data.path relative to recipes/). */
export const MINIMAL = `model:
  path: models/tiny
data:
  path: data/train.jsonl
`;

export function project(): Project {
  const root = mkdtempSync(path.join(os.tmpdir(), 'typetune-recipe-'));
  mkdirSync(path.join(root, 'recipes', 'models', 'tiny'), { recursive: true });
  writeFileSync(path.join(root, 'recipes', 'models', 'tiny', 'config.json'), '{}');
  mkdirSync(path.join(root, 'recipes', 'data'), { recursive: true });
  writeFileSync(path.join(root, 'recipes', 'data', 'train.jsonl'), '{"text": "hi"}\n');
  writeFileSync(path.join(root, 'recipes', 'data', 'eval.jsonl'), '{"text": "ho"}\n');
  const write = (text: string, name = 'x.yaml'): string => {
    writeFileSync(path.join(root, 'recipes', name), text);
    return `recipes/${name}`;
  };
  const load = (text: string, overrides: string[] = [], options: LoadRecipeOptions = {}) =>
    loadRecipe(write(text), overrides, { cwd: root, ...options });
  const error = (text: string, overrides: string[] = [], options: LoadRecipeOptions = {}): string => {
    try {
      load(text, overrides, options);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('expected the recipe to be rejected');
  };
  return { root, write, load, error };
}
