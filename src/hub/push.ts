/**
 * Push an export to the Hub with `@huggingface/hub`: create the repo (or use it), create the
 * branch when one is asked for, and commit the folder's files plus a generated model card in
 * one commit (large files through the Hub's LFS/Xet upload, as the library decides).
 *
 *   pushExport(folder, { repo })   a PEFT, pyreft or merged folder (a run's, when beside one)
 *   pushRun(runDir, { repo })      a run's export (peft or pyreft before merged), with its recipe and losses
 */
import { existsSync, openAsBlob, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { commit, createBranch, createRepo, HubApiError, type CommitOperation } from '@huggingface/hub';
import { ownFile, ownFilesOf } from '../io/insideFolder.js';
import { latestCheckpoint, RECIPE_FILE, TRAINER_STATE_FILE } from '../io/runLayout.js';
import { inspectExport, isGeneratedCard, modelCard, type ExportKind } from './card.js';
import { checkToken, hubEnv, type HubEnv } from './env.js';
import { describeFailure, HubError, recordingFetch } from './errors.js';
import { parseHubRef } from './ref.js';

export interface PushOptions {
  /** `org/name` (an `@branch` suffix is the same as `revision`). */
  repo: string;
  /** Create the repo private (an existing repo keeps its visibility). */
  private?: boolean;
  /** Branch to commit to (created from the default branch when missing). Default: main. */
  revision?: string;
  /** With pushRun: which export of the run (default: peft or pyreft, else merged). */
  format?: ExportKind;
  /** Default: read from process.env now. */
  env?: HubEnv;
}

export interface PushResult {
  repo: string;
  revision: string;
  commit: string;
  url: string;
  folder: string;
  /** Paths committed, README.md included. */
  files: string[];
}

/** What the newest checkpoint of a run says: the recipe text (it goes on the card) and the losses. */
function runRecord(runDir: string | null): {
  recipe: string | null;
  steps: number | null;
  finalLoss: number | null;
  finalEvalLoss: number | null;
} {
  const ck = runDir ? latestCheckpoint(runDir) : null;
  if (!ck) return { recipe: null, steps: null, finalLoss: null, finalEvalLoss: null };
  // Both are the checkpoint's own files, never what a link in it points at.
  const read = (name: string): string | null => {
    const file = ownFile(ck, name);
    return file === null ? null : readFileSync(file, 'utf8');
  };
  const state = JSON.parse(read(TRAINER_STATE_FILE)!) as { step: number; losses: number[]; evalLosses: Array<{ loss: number }> }; // a listed checkpoint has one
  return {
    recipe: read(RECIPE_FILE),
    steps: state.step,
    finalLoss: state.losses.at(-1) ?? null,
    finalEvalLoss: state.evalLosses.at(-1)?.loss ?? null,
  };
}

function target(opts: PushOptions): { repo: string; revision: string } {
  const ref = parseHubRef(opts.repo);
  if (!ref) throw new HubError(`--repo ${JSON.stringify(opts.repo)} is not a Hub id; expected org/name (letters, digits, - _ .)`);
  if (ref.explicitRevision && opts.revision && opts.revision !== ref.revision) {
    throw new HubError(`--repo ${opts.repo} names revision ${ref.revision} but --revision is ${opts.revision}; give one`);
  }
  return { repo: ref.repo, revision: opts.revision ?? ref.revision };
}

/** Push a run's export (its newest checkpoint supplies the recipe and losses for the card). */
export async function pushRun(runDir: string, opts: PushOptions): Promise<PushResult> {
  const run = path.resolve(runDir);
  const order: ExportKind[] = opts.format ? [opts.format] : ['peft', 'pyreft', 'merged'];
  const folder = order.map((f) => path.join(run, f)).find((d) => existsSync(d));
  if (!folder) {
    throw new HubError(
      `${run}: no ${order.join(' or ')} export to push; write one with typetune export --run ${runDir} --format ${opts.format ?? 'peft'} --out ${path.join(runDir, opts.format ?? 'peft')}`,
    );
  }
  return pushFolder(folder, run, opts);
}

/** Push an export folder; when it sits in a run folder, the run's recipe and losses go on the card. */
export async function pushExport(folder: string, opts: PushOptions): Promise<PushResult> {
  const dir = path.resolve(folder);
  const parent = path.dirname(dir);
  return pushFolder(dir, latestCheckpoint(parent) ? parent : null, opts);
}

async function pushFolder(folder: string, runDir: string | null, opts: PushOptions): Promise<PushResult> {
  const { repo, revision } = target(opts);
  const env = opts.env ?? hubEnv();
  const action = `push ${folder} to ${repo}@${revision}`;
  if (env.offline) throw new HubError(`${action}: HF_HUB_OFFLINE=1 forbids the network; unset it to push`);
  if (!env.token)
    throw new HubError(`${action}: pushing needs a token with write access; set HF_TOKEN (create one at ${env.endpoint}/settings/tokens)`);
  checkToken(env, action);
  if (!existsSync(folder)) throw new HubError(`${folder}: folder not found`);
  // Only the folder's own files go up: one linked out of it (to ~/.ssh/id_rsa) stops the push before anything is read.
  const all = ownFilesOf(folder);
  const found = inspectExport(folder);
  const run = runRecord(runDir);
  // A README the user wrote is theirs to keep; ours (the export's local card) is made again naming the repo.
  const readme = all.find((f) => f.name === 'README.md');
  const ownCard = readme !== undefined && !isGeneratedCard(readFileSync(readme.real, 'utf8'));
  const files = ownCard ? all : all.filter((f) => f !== readme);
  const operations: CommitOperation[] = [];
  for (const f of files) operations.push({ operation: 'addOrUpdate', path: f.name, content: await openAsBlob(f.real) });
  if (!ownCard) {
    const base = found.base ?? (run.recipe ? recipeModelPath(run.recipe) : null);
    const card = modelCard({ repo, kind: found.kind, base, adapterType: found.adapterType, ...run });
    operations.push({ operation: 'addOrUpdate', path: 'README.md', content: new Blob([card]) });
  }

  const { fetch, failures } = recordingFetch();
  const hub = { hubUrl: env.endpoint, accessToken: env.token, fetch };
  const ctx = { action, repo, endpoint: env.endpoint, tokenSet: true, failures, writing: true };
  const exists = (err: unknown): boolean => err instanceof HubApiError && err.statusCode === 409;
  try {
    await createRepo({ repo: { type: 'model', name: repo }, ...(opts.private ? { private: true } : {}), ...hub }).catch((err: unknown) => {
      if (!exists(err)) throw err;
    });
    if (revision !== 'main') {
      await createBranch({ repo: { type: 'model', name: repo }, branch: revision, ...hub }).catch((err: unknown) => {
        if (!exists(err)) throw err;
      });
    }
    const out = await commit({
      repo: { type: 'model', name: repo },
      branch: revision,
      title: `Upload ${found.kind} export with typetune`,
      operations,
      ...hub,
    });
    if (!out) throw new HubError(`${action}: the Hub returned no commit`);
    return {
      repo,
      revision,
      commit: out.commit.oid,
      url: out.commit.url,
      folder,
      files: operations.map((o) => (o as { path: string }).path),
    };
  } catch (err) {
    throw describeFailure(err, ctx);
  }
}

/** model.path of a saved (resolved) recipe. */
function recipeModelPath(recipeYaml: string): string | null {
  const path = (parseYaml(recipeYaml) as { model?: { path?: unknown } } | null)?.model?.path;
  return typeof path === 'string' ? path : null;
}

/** Fail before training, not after it, when `output.push_to_hub` cannot work. */
export function checkCanPush(repo: string, env: HubEnv = hubEnv()): void {
  const where = `output.push_to_hub (${repo})`;
  if (env.offline) throw new HubError(`${where}: HF_HUB_OFFLINE=1 forbids pushing; unset it or set output.push_to_hub: null`);
  if (!env.token)
    throw new HubError(`${where}: pushing needs a token with write access; set HF_TOKEN (create one at ${env.endpoint}/settings/tokens)`);
  checkToken(env, where);
}

/** The end of a run with `output.push_to_hub`: push its export; on failure say the run is safe and how to retry. */
export async function pushTrainedRun(runDir: string, repo: string): Promise<PushResult> {
  try {
    return await pushRun(runDir, { repo });
  } catch (err) {
    if (!(err instanceof HubError)) throw err;
    throw new HubError(
      `${err.message} (training finished and is saved in ${runDir}; retry with: typetune push --run ${runDir} --repo ${repo})`,
    );
  }
}
