/**
 * Resolution: turns a validated recipe into a `Recipe` — paths made absolute, derived
 * defaults decided (rules in defaults.ts), and, when asked, the input paths checked on disk.
 *
 * Path rule: a path written in a recipe file is relative to that file's folder (so a recipe
 * runs the same from any working directory); a path given with `--set` is relative to the
 * working directory (where the user typed it); `~/` is the home folder.
 */
import { existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COLUMN_DEFAULTS, DERIVED, defaultExports } from './defaults.js';
import { isInlineTemplate } from './inlineTemplate.js';
import { SUPPORTED_EXTENSIONS } from './dataFileTypes.js';
import { IssueList, type KeyPath } from './errors.js';
import type { RecipeSource } from './source.js';
import type { Recipe } from './types.js';
import { parseHubRef } from '../hub/ref.js';
import type { ValidatedRecipe } from './validate.js';

export interface ResolveOptions {
  /** Working directory for `--set` paths and the default output folder. */
  cwd: string;
  /** Names the default output folder: runs/<name>. */
  name: string;
  /** Check that model.path, data.path and data.eval.path exist. */
  checkFiles: boolean;
}

function resolvePath(source: RecipeSource, keyPath: KeyPath, value: string, cwd: string): string {
  if (value === '~' || value.startsWith('~/')) return path.join(os.homedir(), value.slice(1));
  const base = source.flagFor(keyPath) ? cwd : source.baseDir;
  return path.resolve(base, value);
}

function checkExists(source: RecipeSource, issues: IssueList, keyPath: KeyPath, abs: string, kind: 'model' | 'data'): void {
  const where = source.locate(keyPath);
  if (!existsSync(abs)) {
    issues.add(keyPath, `${kind === 'model' ? 'model folder' : 'file or folder'} not found: ${abs}`, where);
    return;
  }
  if (kind === 'model') {
    if (!statSync(abs).isDirectory())
      issues.add(keyPath, `${abs} is a file; expected a Hugging Face model folder (config.json + *.safetensors)`, where);
    else if (!existsSync(path.join(abs, 'config.json')))
      issues.add(keyPath, `${abs} has no config.json; expected a Hugging Face model folder`, where);
  }
}

export function resolveRecipe(source: RecipeSource, v: ValidatedRecipe, opts: ResolveOptions): Recipe {
  const { cwd } = opts;
  const at = (...p: string[]): string[] => p;
  const localModel = resolvePath(source, at('model', 'path'), v.model.path, cwd);
  // `org/name[@revision]` with no local folder of that name is a Hub id, kept as written (resolved when loaded).
  const hubId = parseHubRef(v.model.path) !== null && !existsSync(localModel);
  const modelPath = hubId ? v.model.path : localModel;
  // As for models: `org/name[@revision]` with no local file or folder of that name is a Hub
  // dataset — unless it ends like a data file (`data/train.jsonl` is a missing file, not an id).
  const placeData = (keyPath: KeyPath, value: string): { path: string; hub: boolean } => {
    const local = resolvePath(source, keyPath, value, cwd);
    const dataFile = (SUPPORTED_EXTENSIONS as readonly string[]).includes(path.extname(value).toLowerCase());
    const hub = parseHubRef(value) !== null && !dataFile && !existsSync(local);
    return { path: hub ? value : local, hub };
  };
  const data = v.data.path === null ? null : placeData(at('data', 'path'), v.data.path);
  const dataPath = data?.path ?? null;
  const sources = v.data.sources?.map((s) => ({ ...s, place: placeData(at('data', 'sources'), s.path) })) ?? null;
  // A chat template is Jinja text or a file beside the recipe.
  const chatTemplate =
    v.data.chat_template === null || isInlineTemplate(v.data.chat_template)
      ? v.data.chat_template
      : resolvePath(source, at('data', 'chat_template'), v.data.chat_template, cwd);
  const evalPath = v.data.eval?.path != null ? resolvePath(source, at('data', 'eval', 'path'), v.data.eval.path, cwd) : null;
  const outputDir = v.output.dir !== null ? resolvePath(source, at('output', 'dir'), v.output.dir, cwd) : DERIVED.outputDir(cwd, opts.name);
  const loggingDir = v.logging.dir !== null ? resolvePath(source, at('logging', 'dir'), v.logging.dir, cwd) : DERIVED.loggingDir(outputDir);

  if (opts.checkFiles) {
    const issues = new IssueList();
    if (!hubId) checkExists(source, issues, at('model', 'path'), modelPath, 'model');
    if (data && !data.hub) checkExists(source, issues, at('data', 'path'), data.path, 'data');
    for (const s of sources ?? []) {
      if (!s.place.hub) checkExists(source, issues, at('data', 'sources'), s.place.path, 'data');
      if (!s.place.hub && s.subset !== null) {
        issues.add(
          at('data', 'sources'),
          `${s.path}: a subset is chosen in a Hub dataset; this is a local file or folder`,
          source.locate(at('data', 'sources')),
        );
      }
      // A local file has no splits: its eval_split would be the training rows again.
      if (!s.place.hub && s.eval_split !== null && existsSync(s.place.path) && !statSync(s.place.path).isDirectory()) {
        issues.add(
          at('data', 'sources'),
          `${s.path}: eval_split needs a dataset with splits (a Hub dataset or a save_to_disk DatasetDict folder); this is one file`,
          source.locate(at('data', 'sources')),
        );
      }
    }
    if (data && !data.hub && v.data.subset !== null) {
      issues.add(
        at('data', 'subset'),
        `a subset is chosen in a Hub dataset; data.path ${dataPath} is a local file or folder (set data.subset: null)`,
        source.locate(at('data', 'subset')),
      );
    }
    if (chatTemplate !== null && !isInlineTemplate(chatTemplate) && !existsSync(chatTemplate)) {
      issues.add(
        at('data', 'chat_template'),
        `template file not found: ${chatTemplate} (give the Jinja text itself, or a file holding it)`,
        source.locate(at('data', 'chat_template')),
      );
    }
    if (evalPath !== null) checkExists(source, issues, at('data', 'eval', 'path'), evalPath, 'data');
    issues.throwIfAny();
  }

  return {
    model: { ...v.model, path: modelPath },
    adapter: v.adapter,
    data: {
      ...v.data,
      path: dataPath,
      sources: sources?.map(({ place, ...s }) => ({ ...s, path: place.path })) ?? null,
      chat_template: chatTemplate,
      columns: { ...COLUMN_DEFAULTS[v.data.format], ...v.data.columns },
      seed: v.data.seed ?? DERIVED.dataSeed(v.training.seed),
      eval: v.data.eval && { ...v.data.eval, path: evalPath },
    },
    training: v.training,
    logging: { ...v.logging, dir: loggingDir },
    output: { dir: outputDir, export: v.output.export ?? defaultExports(v.adapter.type), push_to_hub: v.output.push_to_hub },
    distributed: v.distributed,
  };
}
