/**
 * Hub model ids as every Hugging Face tool writes them: `org/name`, optionally `@revision`
 * (a branch, a tag or a 40-hex commit). Only the two-part form is taken as an id: a bare
 * `name` is far more likely a local folder with a typo than a legacy canonical repo.
 *
 * A value is an id only when it is not an existing local folder: `models/tiny-llama` that exists
 * beside the recipe (or the working directory) is that folder, as in transformers.
 */
import path from 'node:path';

export interface HubRef {
  /** `org/name`. */
  repo: string;
  /** Branch, tag or commit; 'main' when the id names none. */
  revision: string;
  /** Whether the id named its revision (`org/name@rev`). */
  explicitRevision: boolean;
}

/** huggingface_hub's validate_repo_id, per part: letters, digits, `-`, `_`, `.`; no `--`/`..`; no leading/trailing `-`/`.`. */
const PART = /^(?![-.])[A-Za-z0-9_.-]{1,96}(?<![-.])$/;
const COMMIT = /^[0-9a-f]{40}$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT.test(revision);
}

/** The id in `value`, or null when `value` cannot be one (a path like `./x`, `/x`, `~/x`, `a/b/c`). */
export function parseHubRef(value: string): HubRef | null {
  if (value === '' || path.isAbsolute(value) || value.startsWith('.') || value.startsWith('~') || value.includes('\\')) return null;
  const at = value.indexOf('@');
  const repo = at < 0 ? value : value.slice(0, at);
  const revision = at < 0 ? '' : value.slice(at + 1);
  const parts = repo.split('/');
  if (parts.length !== 2 || !parts.every((p) => PART.test(p) && !p.includes('--') && !p.includes('..'))) return null;
  if (at >= 0 && !validRevision(revision)) return null;
  return { repo, revision: revision || 'main', explicitRevision: at >= 0 };
}

/** Git ref names (`refs/pr/1` included) without anything that could leave the cache folder. */
function validRevision(rev: string): boolean {
  return rev !== '' && !rev.split('/').some((seg) => seg === '' || seg === '.' || seg === '..') && !/[\s\\:?*[~^]/.test(rev);
}

export function formatRef(ref: HubRef): string {
  return ref.explicitRevision ? `${ref.repo}@${ref.revision}` : ref.repo;
}

/** What a repo holds: the Hub keeps models and datasets apart (URLs, API routes, cache folders). */
export type RepoKind = 'model' | 'dataset';

/** The cache folder of a repo, as huggingface_hub names it: `models--org--name`, `datasets--org--name`. */
export function repoFolderName(repo: string, kind: RepoKind = 'model'): string {
  return `${kind}s--${repo.split('/').join('--')}`;
}

/** The Hub id a folder of the cache belongs to (`…/models--org--name/snapshots/<commit>`), or null. */
export function repoOfCachedFolder(dir: string): string | null {
  const m = /(?:^|[\\/])models--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/][0-9a-f]{40}[\\/]?$/.exec(path.resolve(dir));
  return m ? `${m[1]}/${m[2]}` : null;
}
