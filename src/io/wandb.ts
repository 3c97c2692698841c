/**
 * A Weights & Biases run fed through `@wandb/sdk` (pure JavaScript: GraphQL at
 * `<WANDB_BASE_URL>/graphql` to create the run, then the history streamed to
 * `/files/<entity>/<project>/<run>/file_stream`; no Python process).
 *
 * What this wrapper adds around the SDK, and why:
 *  - before the run starts, one-line errors for a missing WANDB_API_KEY, a bad WANDB_BASE_URL,
 *    a server that cannot be reached or refuses the key (the SDK would prompt on a terminal,
 *    print stack traces, or retry for minutes);
 *  - the SDK's own SIGINT/SIGTERM/beforeExit handlers are removed: its SIGINT handler calls
 *    process.exit(), which would kill the checkpoint the Trainer saves on Ctrl-C;
 *  - the SDK reports a failed upload only by printing it (console.error/console.log) and
 *    carrying on; while the run is open those lines become one warning, so a server that goes
 *    away mid-run costs metrics, never the training;
 *  - metrics logged at the same step become one history row (the SDK writes one per call);
 *  - finishing waits at most FINISH_TIMEOUT_MS;
 *  - the SDK (and its GraphQL client, ~0.1 s to import) loads only when a run opens.
 */

/** The SDK's module object (a type only: the module itself is imported when a run opens). */
type WandbSdk = typeof import('@wandb/sdk').default;

export const DEFAULT_WANDB_URL = 'https://api.wandb.ai';
/** How long the reachability check, the run's creation and its finish may each take. */

/** Where a run logs (the recipe's logging.wandb): io/ sits below recipe/, so it states the shape it reads. */
export interface WandbTarget {
  project: string;
  /** The team or user; null: the API key's default entity. */
  entity: string | null;
  /** The run's display name; null: the server picks one. */
  name: string | null;
}

const REQUEST_TIMEOUT_MS = 15_000;
const FINISH_TIMEOUT_MS = 30_000;

/** The lines the SDK prints when a request to the server fails (its lib/retry module, in the wandb-js repository). */
const SDK_FAILURE = /^(Fatal HTTP error|Fatal error: |Max retries \(\d+\) reached|Retrying failed request to W&B)/;

/** A W&B setting the user can fix (key, URL, server): the CLI prints it as one line, exit code 2. */
export class WandbError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'WandbError';
  }
}

/** The SDK keeps one run per process (module state): a second open run would take over the first's. */
let openRun: WandbRun | null = null;

export class WandbRun {
  private pending: { step: number; values: Record<string, number> } | null = null;
  private finished = false;
  private warned = false;
  private readonly restoreConsole: () => void;

  private constructor(
    private readonly sdk: WandbSdk,
    /** The server's base URL (no trailing slash). */
    readonly baseUrl: string,
    /** The run's path on the server: entity/project/id. */
    readonly path: string,
    private readonly warn: (message: string) => void,
  ) {
    this.restoreConsole = routeSdkFailures((detail) => this.serverFailed(detail));
  }

  /**
   * Check the key and the server, then create the run, with `config` (the resolved recipe) as
   * its config. Throws WandbError (one line) when it cannot; `warn` hears of later failures.
   */
  static async open(
    target: WandbTarget,
    config: object,
    warn: (message: string) => void,
    env: NodeJS.ProcessEnv = process.env,
  ): Promise<WandbRun> {
    if (openRun)
      throw new WandbError('logging.wandb: another W&B run is open in this process (the SDK holds one at a time); finish it first');
    const { apiKey, baseUrl } = wandbSettings(env);
    const entity = await checkServer(baseUrl, apiKey, target);
    const sdk = (await import('@wandb/sdk')).default;
    const listeners = signalListeners();
    let run: WandbRun | null = null;
    try {
      const started = sdk.init({
        project: target.project,
        entity,
        ...(target.name ? { name: target.name } : {}),
        config: asWandbRunConfig(config),
        settings: { apiKey, baseUrl, silent: true },
      });
      const sdkRun = await withTimeout(
        started,
        REQUEST_TIMEOUT_MS,
        `logging.wandb: the W&B server at ${baseUrl} did not create the run within ${REQUEST_TIMEOUT_MS / 1000}s`,
      );
      run = new WandbRun(sdk, baseUrl, `${sdkRun.entity}/${sdkRun.project}/${sdkRun.id}`, warn);
    } catch (err) {
      if (err instanceof WandbError) throw err;
      throw new WandbError(`logging.wandb: the W&B server at ${baseUrl} did not create the run (${oneLine(err)})`);
    } finally {
      dropNewSignalListeners(listeners);
    }
    openRun = run;
    return run;
  }

  /** Log scalars at an optimizer step; those of one step (train and eval) become one history row. Non-finite values are left out (JSON has no NaN). */
  log(metrics: Record<string, number>, step: number): void {
    if (this.finished) return;
    if (this.pending && this.pending.step !== step) this.flush();
    this.pending ??= { step, values: {} };
    for (const [key, value] of Object.entries(metrics)) if (Number.isFinite(value)) this.pending.values[key] = value;
  }

  /** Send what is left and close the run (exit code 0: finished; else failed or interrupted). Never throws: the run's own outcome matters more. */
  async finish(exitCode: number): Promise<void> {
    if (this.finished) return;
    this.flush();
    this.finished = true;
    try {
      await withTimeout(this.sdk.finish(exitCode), FINISH_TIMEOUT_MS, `did not confirm within ${FINISH_TIMEOUT_MS / 1000}s`);
    } catch (err) {
      this.serverFailed(oneLine(err));
    } finally {
      this.restoreConsole();
      openRun = null;
    }
  }

  private flush(): void {
    const p = this.pending;
    this.pending = null;
    if (p && Object.keys(p.values).length > 0) this.sdk.log(p.values, p.step);
  }

  private serverFailed(detail: string): void {
    if (this.warned) return;
    this.warned = true;
    this.warn(
      `logging.wandb: the W&B server at ${this.baseUrl} failed (${detail}); training goes on, but metrics of run ${this.path} may be missing there (later failures are not repeated)`,
    );
  }
}

/** WANDB_API_KEY and WANDB_BASE_URL, as the W&B clients read them. */
export function wandbSettings(env: NodeJS.ProcessEnv): { apiKey: string; baseUrl: string } {
  const apiKey = env.WANDB_API_KEY?.trim() ?? '';
  if (apiKey === '')
    throw new WandbError(
      'logging.wandb: WANDB_API_KEY is not set; export your W&B API key (from <W&B server>/authorize) as WANDB_API_KEY, or set logging.wandb: null',
    );
  const raw = env.WANDB_BASE_URL?.trim() || DEFAULT_WANDB_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WandbError(`WANDB_BASE_URL: expected an http(s) URL such as ${DEFAULT_WANDB_URL}, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new WandbError(`WANDB_BASE_URL: expected an http(s) URL such as ${DEFAULT_WANDB_URL}, got ${JSON.stringify(raw)}`);
  return { apiKey, baseUrl: raw.replace(/\/+$/, '') };
}

/**
 * Ask the server who the key belongs to (the query the SDK itself starts with), so a wrong
 * URL or key is one line before step 1. Returns the entity the run goes to.
 */
async function checkServer(baseUrl: string, apiKey: string, target: WandbTarget): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`api:${apiKey}`).toString('base64')}` },
      body: JSON.stringify({ query: 'query Viewer { viewer { id entity } }', operationName: 'Viewer', variables: {} }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw new WandbError(
      `logging.wandb: cannot reach the W&B server at ${baseUrl} (${oneLine(err)}); check WANDB_BASE_URL and the network, or set logging.wandb: null`,
    );
  }
  if (res.status === 401 || res.status === 403)
    throw new WandbError(
      `logging.wandb: the W&B server at ${baseUrl} refused WANDB_API_KEY (HTTP ${res.status}); check the key (from ${baseUrl.replace('api.wandb', 'wandb')}/authorize)`,
    );
  if (!res.ok)
    throw new WandbError(
      `logging.wandb: the W&B server at ${baseUrl} answered HTTP ${res.status} to the login check; is WANDB_BASE_URL a W&B server?`,
    );
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new WandbError(
      `logging.wandb: the W&B server at ${baseUrl} answered the login check with something other than JSON; is WANDB_BASE_URL a W&B server?`,
    );
  }
  const viewer = (body as { data?: { viewer?: { entity?: unknown } | null } } | null)?.data?.viewer;
  if (!viewer) throw new WandbError(`logging.wandb: the W&B server at ${baseUrl} knows no user for WANDB_API_KEY; check the key`);
  if (target.entity) return target.entity;
  if (typeof viewer.entity !== 'string' || viewer.entity === '')
    throw new WandbError(`logging.wandb: the W&B server at ${baseUrl} gave no default entity for this key; set logging.wandb.entity`);
  return viewer.entity;
}

/** The run config as W&B clients send it: each top-level key as { value } (the Python client's layout, which the W&B app reads). */
function asWandbRunConfig(config: object): Record<string, { value: unknown }> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, { value: v }]));
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'beforeExit'] as const;
/** process as a plain emitter: its typings split signals from other events, which this treats alike. */
const processEvents = process as unknown as NodeJS.EventEmitter;
// biome-ignore lint/complexity/noBannedTypes: what EventEmitter.listeners() returns, compared by identity only.
type Listeners = Map<string, Function[]>;

function signalListeners(): Listeners {
  return new Map(SIGNALS.map((s) => [s, processEvents.listeners(s)]));
}

/** Remove the handlers `wandb.init` installed (the Trainer owns the signals; it finishes the run itself). */
function dropNewSignalListeners(before: Listeners): void {
  for (const s of SIGNALS) {
    for (const l of processEvents.listeners(s))
      if (!before.get(s)?.includes(l)) processEvents.removeListener(s, l as (...args: unknown[]) => void);
  }
}

/** While a run is open, the SDK's printed request failures go to `failed` (as one line) instead of the console. */
function routeSdkFailures(failed: (detail: string) => void): () => void {
  const { error, log } = console;
  const route =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]): void => {
      if (typeof args[0] === 'string' && SDK_FAILURE.test(args[0])) failed(oneLine(args.length > 1 ? args[1] : args[0]));
      else original.apply(console, args);
    };
  console.error = route(error);
  console.log = route(log);
  return () => {
    console.error = error;
    console.log = log;
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WandbError(message)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function oneLine(err: unknown): string {
  const e = err as { message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const cause = e?.cause && typeof e.cause === 'object' ? ` (${String(e.cause.code ?? e.cause.message ?? '')})` : '';
  const text = typeof e?.message === 'string' ? `${e.message}${cause}` : String(err);
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ')
    .slice(0, 300);
}
