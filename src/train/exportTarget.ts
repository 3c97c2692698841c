/**
 * Where an export (or `merge`) may write. Every export replaces its --out folder whole, so it may
 * only land on a new folder, an empty one, or an earlier export of ours — told by its file set,
 * since an export writes nothing else. A folder holding anything more (another run, the user's
 * notes, a sub-folder) is refused, as is an --out that is, or holds, a folder the export reads.
 */
import { accessSync, constants, existsSync, lstatSync, readdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { ExportFormat } from '../recipe/types.js';
import { describeFsError } from '../io/fsErrors.js';
import { listCheckpoints, TRAINER_STATE_FILE } from '../io/runLayout.js';
import { TOKENIZER_FILES } from '../hub/files.js';
import { TrainerError } from './errors.js';

const exactly =
  (names: readonly string[]) =>
  (name: string): boolean =>
    names.includes(name);

/** The files each export format writes (README.md: the model card `push` adds). */
const EXPORT_FILES: Record<ExportFormat, (name: string) => boolean> = {
  peft: exactly(['adapter_config.json', 'adapter_model.safetensors', 'README.md']),
  pyreft: (name) => /^intkey_[^/\\]+\.bin$/.test(name) || exactly(['config.json', 'README.md'])(name),
  merged: (name) =>
    /^model(-\d+-of-\d+)?\.safetensors$/.test(name) ||
    exactly(['config.json', 'model.safetensors.index.json', 'README.md', ...TOKENIZER_FILES])(name),
};

/** Entries of `dir` that no export writes: sub-folders, links, and files of other names ("name/" for a folder). */
export function foreignEntries(dir: string): string[] {
  const foreign: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const st = lstatSync(path.join(dir, name));
    if (st.isDirectory()) foreign.push(`${name}/`);
    else if (!st.isFile() || !Object.values(EXPORT_FILES).some((writes) => writes(name))) foreign.push(name);
  }
  return foreign;
}

/** A folder the export must leave alone: `what` names it in the message ("the --model folder"). */
export interface ProtectedFolder {
  what: string;
  dir: string;
  /** Refuse an --out inside it too (a merge never writes into the model it reads). */
  andInside?: boolean;
}

/**
 * Refuse an --out that an export would harm: a file, a link, a folder holding anything but an
 * earlier export, a training run, a folder the export reads (or one holding it), an unwritable
 * place. Touches nothing. `flag` names the option in the one-line error.
 */
export function checkExportTarget(out: string, protect: readonly ProtectedFolder[], flag = '--out'): void {
  if (existsSync(out) || isLink(out)) {
    const st = lstatSync(out);
    if (st.isSymbolicLink())
      throw new TrainerError(
        `${flag} ${out}: is a symbolic link, which the export would replace; give the folder it points to, or a new one`,
      );
    if (!st.isDirectory())
      throw new TrainerError(`${flag} ${out}: a file exists there; give a folder path (a new one, or an earlier export to replace)`);
    const run = [
      ...listCheckpoints(out).map((c) => path.basename(c.dir)),
      ...(existsSync(path.join(out, TRAINER_STATE_FILE)) ? [TRAINER_STATE_FILE] : []),
    ];
    if (run.length > 0)
      throw new TrainerError(
        `${flag} ${out}: holds a training run or checkpoint (${shortList(run)}), which an export would replace; give another folder`,
      );
    const foreign = foreignEntries(out);
    if (foreign.length > 0) {
      throw new TrainerError(
        `${flag} ${out}: holds ${shortList(foreign)}, which no export writes; an export replaces its folder whole, so give a new or empty folder, or an earlier export`,
      );
    }
  }
  const target = realLocation(out);
  for (const p of [...protect, { what: 'the current folder', dir: process.cwd() }]) {
    if (!existsSync(p.dir)) continue;
    const kept = realpathSync(p.dir);
    const shown = kept === target ? '' : ` ${p.dir}`;
    if (kept === target || isInside(kept, target)) {
      throw new TrainerError(
        `${flag} ${out} ${kept === target ? 'is' : 'holds'} ${p.what}${shown}, which the export would replace; give another folder`,
      );
    }
    if (p.andInside && isInside(target, kept))
      throw new TrainerError(`${flag} ${out} is inside ${p.what} ${p.dir}; give a folder outside it`);
  }
  checkWritable(out, flag);
}

/** The export renames a folder into --out's parent (and the old one out of it): both must be writable. */
function checkWritable(out: string, flag: string): void {
  const parent = nearestExisting(path.dirname(path.resolve(out)));
  try {
    accessSync(parent, constants.W_OK);
    if (existsSync(out)) accessSync(out, constants.W_OK);
  } catch (err) {
    const why = describeFsError(err);
    if (!why) throw err;
    throw new TrainerError(`${flag} ${out} cannot be written: ${why}`);
  }
}

/** `p` with links resolved as far as it exists (the rest appended), so two spellings of one place compare equal. */
function realLocation(p: string): string {
  const abs = path.resolve(p);
  const existing = nearestExisting(abs);
  return path.join(realpathSync(existing), path.relative(existing, abs));
}

function nearestExisting(abs: string): string {
  let at = abs;
  while (!existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

function shortList(names: readonly string[]): string {
  return names.slice(0, 3).join(', ') + (names.length > 3 ? `, … (${names.length} in all)` : '');
}
