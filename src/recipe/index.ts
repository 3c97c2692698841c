/** Recipes: the typed schema of a training run, YAML loading with line-accurate errors, overrides, defaults. */
export * from './types.js';
export { loadRecipe, overriddenKeys, type LoadRecipeOptions } from './load.js';
export { recipeDefaults, type RecipeDefaults } from './defaults.js';
export { renderRecipeYaml, renderDefaultsYaml, type RenderOptions } from './render.js';
export { RecipeError, formatIssue, type RecipeIssue, type SourceLocation } from './errors.js';
