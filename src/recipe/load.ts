/**
 * loadRecipe: file or object → overrides → validation → resolution. Synchronous: a recipe is
 * a small file, and callers (the CLI, `Trainer.fromRecipe`) need it before anything else.
 */
import path from 'node:path';
import { applyOverrides, parseOverrides } from './overrides.js';
import { resolveRecipe } from './resolve.js';
import { objectSource, readRecipeFile, type RecipeSource } from './source.js';
import type { Recipe } from './types.js';
import { validateRecipe } from './validate.js';

export interface LoadRecipeOptions {
  /** Working directory: the recipe file path and `--set` paths resolve against it. Default: process.cwd(). */
  cwd?: string;
  /** For an object recipe: the folder its relative paths resolve against. Default: cwd. */
  baseDir?: string;
  /** Check that model.path, data.path (and data.eval.path) exist on disk. Default: true. */
  checkFiles?: boolean;
  /** Run name for the default output folder runs/<name>. Default: the recipe file's name, or "recipe". */
  name?: string;
}

/**
 * Loads, validates and resolves a recipe.
 * @param pathOrObject a YAML file path, or a recipe object (e.g. a parsed recipe, or a `Recipe`).
 * @param overrides `key.path=value` strings, as given to `--set` (without the flag).
 * @throws RecipeError naming file:line (or the --set flag), the key path and what is valid.
 */
export function loadRecipe(pathOrObject: string | object, overrides: readonly string[] = [], options: LoadRecipeOptions = {}): Recipe {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const source: RecipeSource =
    typeof pathOrObject === 'string'
      ? readRecipeFile(pathOrObject, cwd)
      : objectSource(pathOrObject, path.resolve(cwd, options.baseDir ?? '.'));
  const parsed = parseOverrides(overrides);
  applyOverrides(source, parsed);
  const validated = validateRecipe(source);
  const name = options.name ?? (typeof pathOrObject === 'string' ? path.basename(pathOrObject).replace(/\.ya?ml$/i, '') : 'recipe');
  const recipe = resolveRecipe(source, validated, { cwd, name, checkFiles: options.checkFiles ?? true });
  overridden.set(
    recipe,
    parsed.map((o) => o.path.join('.')),
  );
  return recipe;
}

/** The key paths each loaded recipe took from `--set`, beside it rather than in it (a Recipe is what the file says, resolved). */
const overridden = new WeakMap<Recipe, readonly string[]>();

/**
 * The key paths (`training.batch_size`) that `--set` gave this recipe when it was loaded: what
 * the user changed deliberately, on the command line (a resume accepts changes only from there).
 */
export function overriddenKeys(recipe: Recipe): readonly string[] {
  return overridden.get(recipe) ?? [];
}
