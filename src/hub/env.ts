/**
 * The environment huggingface_hub reads, read the same way, so that typetune and Python share
 * one cache, one endpoint and one token:
 *
 *   HF_HUB_CACHE   the cache folder (else HF_HOME/hub, else ~/.cache/huggingface/hub;
 *                  XDG_CACHE_HOME replaces ~/.cache, as in huggingface_hub)
 *   HF_HOME        huggingface_hub's home: the cache under hub/, the stored token in token
 *   HF_ENDPOINT    the Hub's address (default https://huggingface.co)
 *   HF_TOKEN       the access token (else the file HF_TOKEN_PATH, else HF_HOME/token,
 *                  which `hf auth login` writes)
 *   HF_HUB_OFFLINE 1/true/yes/on: never touch the network; only the cache is used
 *
 * Read at each call (not at import), so a program or a test can change them as it runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HubError } from './errors.js';

export interface HubEnv {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  /** Where the token came from, for messages: "HF_TOKEN" or the token file's path. */
  tokenSource?: string;
  offline: boolean;
}

const TRUE_VALUES = ['1', 'true', 'yes', 'on'];

function hfHome(env: NodeJS.ProcessEnv): string {
  if (env.HF_HOME) return expandHome(env.HF_HOME);
  const xdg = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(xdg, 'huggingface');
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

function readToken(env: NodeJS.ProcessEnv): Pick<HubEnv, 'token' | 'tokenSource'> {
  const direct = env.HF_TOKEN?.trim();
  if (direct) return { token: direct, tokenSource: 'HF_TOKEN' };
  const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : path.join(hfHome(env), 'token');
  const token = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  return token ? { token, tokenSource: file } : { token: undefined };
}

export function hubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const cacheDir = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  return {
    cacheDir: path.resolve(cacheDir ? expandHome(cacheDir) : path.join(hfHome(env), 'hub')),
    endpoint: (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, ''),
    ...readToken(env),
    offline: TRUE_VALUES.includes((env.HF_HUB_OFFLINE ?? '').trim().toLowerCase()),
  };
}

/**
 * The token goes into an HTTP header, which holds printable ASCII only: a pasted "é" or a
 * curly quote would fail deep inside fetch with a stack trace (or be sent mangled), so it is
 * refused first, saying where in the token the bad character sits.
 */
export function checkToken(env: HubEnv, action: string): void {
  const token = env.token;
  if (token === undefined) return;
  const at = [...token].findIndex((ch) => ch < '!' || ch > '~');
  if (at < 0) return;
  const code = [...token][at]!.codePointAt(0)!;
  const what =
    code > 0x7e
      ? `a non-ASCII character (U+${code.toString(16).toUpperCase().padStart(4, '0')})`
      : code === 0x20
        ? 'a space'
        : 'a control character';
  const source = env.tokenSource === undefined || env.tokenSource === 'HF_TOKEN' ? 'HF_TOKEN' : `the token in ${env.tokenSource}`;
  throw new HubError(
    `${action}: ${source} holds ${what} at position ${at + 1}; a Hugging Face token is ASCII (hf_…): copy it again from ${env.endpoint}/settings/tokens`,
  );
}
