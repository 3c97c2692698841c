/**
 * Recipe errors. Every problem names where it is (file and line, or the `--set` flag that
 * caused it), the key path, and what would be valid. Validation collects every problem it
 * finds and throws them together, so one run of `typetune recipe --check` shows them all.
 */

/** A key path: section and key names, with list indices as numbers. */
export type KeyPath = readonly (string | number)[];

export function formatPath(path: KeyPath): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out;
}

/** Where a value came from: a line (and column) of a file, or a `--set` flag. */
export interface SourceLocation {
  file?: string;
  line?: number;
  col?: number;
  /** The override flag as the user wrote it, e.g. `--set training.learning_rate=fast`. */
  flag?: string;
}

export interface RecipeIssue {
  /** The key path, e.g. "training.learning_rate"; empty for whole-file problems. */
  path: string;
  message: string;
  where: SourceLocation;
}

export function formatIssue(issue: RecipeIssue): string {
  const { file, line, col, flag } = issue.where;
  let prefix = '';
  if (flag) prefix = flag;
  else if (file && line !== undefined) prefix = col !== undefined ? `${file}:${line}:${col}` : `${file}:${line}`;
  else if (file) prefix = file;
  const parts = [prefix, issue.path, issue.message].filter((p) => p !== '');
  return parts.join(': ');
}

export class RecipeError extends Error {
  readonly issues: readonly RecipeIssue[];

  constructor(issues: readonly RecipeIssue[]) {
    // File order first (by line), then the --set flags: the order a reader fixes them in.
    const rank = (i: RecipeIssue): number => (i.where.flag ? Infinity : (i.where.line ?? 0));
    issues = [...issues].sort((a, b) => rank(a) - rank(b));
    const lines = issues.map(formatIssue);
    super(lines.length === 1 ? lines[0]! : `${lines.length} problems in the recipe:\n  ${lines.join('\n  ')}`);
    this.name = 'RecipeError';
    this.issues = issues;
  }
}

/** Collects issues during one load; `throwIfAny` ends the phase if something was wrong. */
export class IssueList {
  readonly items: RecipeIssue[] = [];

  add(path: KeyPath | string, message: string, where: SourceLocation): void {
    this.items.push({ path: typeof path === 'string' ? path : formatPath(path), message, where });
  }

  throwIfAny(): void {
    if (this.items.length > 0) throw new RecipeError(this.items);
  }
}
