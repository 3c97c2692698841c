/**
 * Hub failures as one line each, saying what failed and what to do: an unknown repo or
 * revision, a gated model without (or with the wrong) token, a revoked token, no network.
 *
 * `@huggingface/hub` throws `HubApiError` with the status and the JSON body; the Hub's
 * `X-Error-Code` header (RepoNotFound, RevisionNotFound, GatedRepo …), which tells a
 * missing repo from a private one, is kept by `recordingFetch`, the fetch we hand the library.
 */
import { HubApiError } from '@huggingface/hub';

export class HubError extends Error {
  /** Bad input or an unreachable Hub, not a bug: the CLI prints the message alone (exit 2). */
  readonly userFacing = true;

  constructor(message: string) {
    super(message);
    this.name = 'HubError';
  }
}

export interface FailureHeaders {
  code: string | null;
  message: string | null;
}

/** A fetch that remembers the Hub's error headers of each failed response, by URL. */
export function recordingFetch(inner: typeof fetch = fetch): { fetch: typeof fetch; failures: Map<string, FailureHeaders> } {
  const failures = new Map<string, FailureHeaders>();
  const wrapped: typeof fetch = async (input, init) => {
    const res = await inner(input, init);
    if (!res.ok) failures.set(res.url, { code: res.headers.get('x-error-code'), message: res.headers.get('x-error-message') });
    return res;
  };
  return { fetch: wrapped, failures };
}

export interface FailureContext {
  /** What was being done, e.g. "download meta-llama/Llama-3.2-1B@main". */
  action: string;
  repo: string;
  revision?: string;
  endpoint: string;
  tokenSet: boolean;
  failures: Map<string, FailureHeaders>;
  /** The local path a relative value would have been, for ids that might be meant as folders. */
  localCandidate?: string;
  /** Pushing needs write access: a 403 then means the token lacks it. */
  writing?: boolean;
  /** What the repo should hold (default model). */
  kind?: 'model' | 'dataset';
}

/** The library's message without its "URL: … Request ID: …" trailer. */
function hubMessage(err: HubApiError): string {
  return err.message.replace(/\.?\s*URL: \S+.*$/s, '').trim();
}

/** The network failure behind a fetch error (ECONNREFUSED, ENOTFOUND, "terminated" …), or null. */
function networkCause(err: unknown): string | null {
  if (typeof err === 'string') return err; // a stream aborted with the reason's message
  if (!(err instanceof Error)) return null;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err.name === 'TypeError' && /fetch failed|terminated/.test(err.message)) return cause?.code ?? cause?.message ?? err.message;
  const code = (err as { code?: string }).code;
  if (code && /^(ECONN|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EPIPE|UND_ERR)/.test(code)) return code;
  if (/terminated|other side closed|socket hang up/i.test(err.message)) return err.message;
  return null;
}

/** A thrown value from the library or fetch → one HubError line; other errors pass through. */
export function describeFailure(err: unknown, ctx: FailureContext): unknown {
  if (err instanceof HubError) return err;
  const { action, repo, endpoint } = ctx;
  const kind = ctx.kind ?? 'model';
  const net = networkCause(err);
  if (net !== null) {
    return new HubError(
      `${action}: cannot reach the Hub at ${endpoint} (${net}); check the network, or set HF_HUB_OFFLINE=1 to use only ${kind}s already in the cache`,
    );
  }
  if (err instanceof TypeError && /access token must start with 'hf_'/.test(err.message)) {
    return new HubError(
      `${action}: HF_TOKEN is not a Hugging Face access token (they start with hf_); copy one from ${endpoint}/settings/tokens`,
    );
  }
  if (!(err instanceof HubApiError)) return err;
  const headers = ctx.failures.get(err.url) ?? { code: null, message: null };
  const said = headers.message ?? hubMessage(err);
  const status = err.statusCode;
  if (headers.code === 'GatedRepo' || (status === 403 && /gated|restricted|authorized list/i.test(said))) {
    const how = ctx.tokenSet
      ? `your token has no access yet: request it at ${endpoint}/${repo}`
      : `accept its conditions at ${endpoint}/${repo}, then set HF_TOKEN to a token of that account`;
    return new HubError(`${action}: ${repo} is a gated ${kind} (${status}: ${said}); ${how}`);
  }
  if (headers.code === 'RevisionNotFound') {
    return new HubError(`${action}: ${repo} has no revision '${ctx.revision ?? ''}' (a branch, tag or 40-hex commit)`);
  }
  if (headers.code === 'RepoNotFound' || (status === 404 && headers.code !== 'EntryNotFound')) {
    const local = ctx.localCandidate ? ` nor a local folder (${ctx.localCandidate} does not exist)` : '';
    const priv = ctx.tokenSet ? 'check the id and that your token can see it' : 'check the id; if it is private, set HF_TOKEN';
    return new HubError(`${action}: ${repo} is not a ${kind} repository on ${endpoint}${local} (${status}); ${priv}`);
  }
  if (status === 401) {
    if (ctx.tokenSet)
      return new HubError(
        `${action}: the Hub rejected the token (401: ${said}); it may be revoked or mistyped: create one at ${endpoint}/settings/tokens and set HF_TOKEN`,
      );
    return new HubError(`${action}: the Hub wants a token (401: ${said}); set HF_TOKEN (${endpoint}/settings/tokens)`);
  }
  if (status === 403 && ctx.writing) {
    return new HubError(`${action}: the token may not write to ${repo} (403: ${said}); use a token with write access to it`);
  }
  return new HubError(`${action}: the Hub answered ${status} (${said})`);
}
