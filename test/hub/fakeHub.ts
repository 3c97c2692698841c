/**
 * Test doubles for the Hugging Face Hub, both real formats:
 *  - `writeHubCache`: a cache folder laid out as huggingface_hub writes it (refs, snapshots with
 *    relative symlinks, blobs named by etag);
 *  - `FakeHub`: an HTTP server on 127.0.0.1 (node:http) answering the requests `@huggingface/hub`
 *    makes — model info, tree, resolve (Range, ETag, X-Repo-Commit), repo and branch creation,
 *    preupload, LFS batch and upload, commit — with the Hub's error codes and headers. It logs
 *    every request so tests can assert what was asked. Dataset repos are stored under
 *    `datasets/<org>/<name>` and answered on the Hub's dataset routes (/api/datasets/…, /datasets/…/resolve/…).
 *    A repo can be made hostile (`Tamper`): a commit id or listing entries rewritten as a
 *    malicious server would send them.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export type Files = Record<string, Buffer>;

/** Files stored with LFS on the Hub (as its default .gitattributes makes them): weights, pickles, Parquet. */
export const isLfs = (file: string): boolean => /\.(safetensors|bin|pth|pt|parquet)$/.test(file);

/** The etag the Hub gives a file, and the cache's blob name: sha256 for LFS, the git blob id otherwise. */
export function etagOf(file: string, bytes: Buffer): string {
  if (isLfs(file)) return createHash('sha256').update(bytes).digest('hex');
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

export function readFolder(dir: string): Files {
  const out: Files = {};
  for (const f of readdirSync(dir)) out[f] = readFileSync(path.join(dir, f));
  return out;
}

export const commitId = (label: string): string => createHash('sha1').update(label).digest('hex');

/** Write `models--org--name` under `cacheDir`: each commit's files as blobs + symlinks, and the refs. */
export function writeHubCache(cacheDir: string, repo: string, commits: Record<string, Files>, refs: Record<string, string>): string {
  const storage = path.join(cacheDir, `models--${repo.replace('/', '--')}`);
  for (const [commit, files] of Object.entries(commits)) {
    for (const [file, bytes] of Object.entries(files)) {
      const etag = etagOf(file, bytes);
      mkdirSync(path.join(storage, 'blobs'), { recursive: true });
      writeFileSync(path.join(storage, 'blobs', etag), bytes);
      const pointer = path.join(storage, 'snapshots', commit, file);
      mkdirSync(path.dirname(pointer), { recursive: true });
      symlinkSync(path.relative(path.dirname(pointer), path.join(storage, 'blobs', etag)), pointer);
    }
  }
  for (const [ref, commit] of Object.entries(refs)) {
    const file = path.join(storage, 'refs', ...ref.split('/'));
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, commit); // huggingface_hub writes the bare hash, no newline
  }
  return storage;
}

/** A file entry of the tree listing, as the Hub sends it. */
export interface TreeEntry {
  type: 'file';
  path: unknown;
  size: unknown;
  oid: unknown;
  lfs?: { oid: unknown; size: unknown; pointerSize: number };
}

/** What a hostile server lies about: the commit a revision resolves to, and listing entries (the bytes stay served under their real names). */
export interface Tamper {
  sha?: unknown;
  entry?: (e: TreeEntry) => TreeEntry;
}

interface Repo {
  commits: Map<string, Files>;
  refs: Map<string, string>;
  gated: boolean;
  private: boolean;
  tamper?: Tamper;
}

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  auth?: string;
  body?: string;
}

export class FakeHub {
  readonly repos = new Map<string, Repo>();
  readonly requests: LoggedRequest[] = [];
  /** Tokens the Hub accepts; any other Bearer token is "revoked". */
  readonly tokens = new Set<string>(['hf_good']);
  /** Tokens granted access to gated repos. */
  readonly granted = new Set<string>();
  /** Cut the connection once, after this many body bytes of this file. */
  dropOnce: { file: string; after: number } | null = null;
  /** Uploaded LFS objects by sha256. */
  readonly lfs = new Map<string, Buffer>();
  private server = http.createServer((req, res) => void this.handle(req, res));
  url = '';

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addRepo(repo: string, files: Files, opts: { gated?: boolean; branches?: Record<string, Files>; tamper?: Tamper } = {}): string {
    const main = commitId(`${repo}:main`);
    const r: Repo = {
      commits: new Map([[main, files]]),
      refs: new Map([['main', main]]),
      gated: opts.gated ?? false,
      private: false,
      tamper: opts.tamper,
    };
    for (const [b, f] of Object.entries(opts.branches ?? {})) {
      const c = commitId(`${repo}:${b}`);
      r.commits.set(c, f);
      r.refs.set(b, c);
    }
    this.repos.set(repo, r);
    return main;
  }

  /** Requests other than the LFS upload URL, as "METHOD path" (query stripped). */
  paths(): string[] {
    return this.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`);
  }

  private fail(res: http.ServerResponse, status: number, code: string | null, message: string): void {
    res.writeHead(status, { 'Content-Type': 'application/json', ...(code ? { 'X-Error-Code': code } : {}), 'X-Error-Message': message });
    res.end(JSON.stringify({ error: message }));
  }

  private json(res: http.ServerResponse, value: unknown): void {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(value));
  }

  /** The Hub's auth rules: a bad token is 401; a gated repo wants a granted token. Returns false when it answered. */
  private authorize(req: http.IncomingMessage, res: http.ServerResponse, name: string, repo: Repo | undefined): boolean {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token !== undefined && !this.tokens.has(token)) {
      this.fail(res, 401, null, 'Invalid credentials in Authorization header');
      return false;
    }
    if (!repo) {
      this.fail(res, token ? 404 : 401, 'RepoNotFound', 'Repository not found');
      return false;
    }
    if (repo.gated && token === undefined) {
      this.fail(
        res,
        401,
        'GatedRepo',
        `Access to model ${name} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      );
      return false;
    }
    if (repo.gated && !this.granted.has(token!)) {
      this.fail(
        res,
        403,
        'GatedRepo',
        `Access to model ${name} is restricted and you are not in the authorized list. Visit ${this.url}/${name} to ask for access.`,
      );
      return false;
    }
    return true;
  }

  private commitOf(repo: Repo, rev: string): string | undefined {
    return repo.refs.get(rev) ?? (repo.commits.has(rev) ? rev : undefined);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url!, this.url);
    const p = decodeURIComponent(url.pathname);
    this.requests.push({
      method: req.method!,
      url: req.url!,
      range: req.headers.range,
      auth: req.headers.authorization,
      body: body.length && !p.startsWith('/lfs-upload/') ? body.toString() : undefined,
    });
    let m: RegExpExecArray | null;
    if (req.method === 'PUT' && (m = /^\/lfs-upload\/([0-9a-f]{64})$/.exec(p))) {
      if (createHash('sha256').update(body).digest('hex') !== m[1]) return this.fail(res, 400, null, 'sha256 mismatch');
      this.lfs.set(m[1]!, body);
      res.writeHead(200).end();
      return;
    }
    if (req.method === 'POST' && p === '/api/repos/create') return this.createRepo(req, res, JSON.parse(body.toString()));
    if ((m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|tree|preupload|commit|branch)\/(.+)$/.exec(p))) {
      const [, type, id, kind, rev] = m as unknown as [string, string, string, string, string];
      const name = type === 'datasets' ? `datasets/${id}` : id;
      const repo = this.repos.get(name);
      if (!this.authorize(req, res, name, repo)) return;
      if (kind === 'branch') {
        if (repo!.refs.has(rev)) return this.fail(res, 409, null, 'Reference already exists');
        repo!.refs.set(rev, repo!.refs.get('main')!);
        return this.json(res, {});
      }
      if (kind === 'preupload') {
        const files = (JSON.parse(body.toString()) as { files: Array<{ path: string }> }).files;
        return this.json(res, {
          files: files.map((f) => ({ path: f.path, uploadMode: isLfs(f.path) ? 'lfs' : 'regular', shouldIgnore: false })),
        });
      }
      if (kind === 'commit') return this.commit(res, name, repo!, rev, body.toString());
      const commit = this.commitOf(repo!, rev.replace(/\/$/, ''));
      if (!commit) return this.fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      const files = repo!.commits.get(commit)!;
      if (kind === 'revision')
        return this.json(res, {
          _id: `id-${name}`,
          id: name,
          sha: repo!.tamper && 'sha' in repo!.tamper ? repo!.tamper.sha : commit,
          private: repo!.private,
          gated: repo!.gated ? 'auto' : false,
          downloads: 0,
          likes: 0,
          lastModified: '2026-01-01T00:00:00.000Z',
          pipeline_tag: 'text-generation',
        });
      const entries = Object.entries(files)
        .filter(([f]) => url.searchParams.get('recursive') === 'true' || !f.includes('/'))
        .map(
          ([f, bytes]): TreeEntry => ({
            type: 'file',
            path: f,
            size: isLfs(f) ? 134 : bytes.length,
            oid: etagOf(f.replace(/\.\w+$/, '.pointer'), Buffer.from(f)),
            ...(isLfs(f) ? { lfs: { oid: etagOf(f, bytes), size: bytes.length, pointerSize: 134 } } : { oid: etagOf(f, bytes) }),
          }),
        )
        .map((e) => repo!.tamper?.entry?.(e) ?? e);
      const dirs = [
        ...new Set(
          Object.keys(files)
            .filter((f) => f.includes('/'))
            .map((f) => f.split('/')[0]!),
        ),
      ].map((d) => ({ type: 'directory', path: d, size: 0, oid: commitId(d) }));
      return this.json(res, [...entries, ...(url.searchParams.get('recursive') === 'true' ? [] : dirs)]);
    }
    if (req.method === 'POST' && (m = /^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/.exec(p))) {
      const objects = (JSON.parse(body.toString()) as { objects: Array<{ oid: string; size: number }> }).objects;
      return this.json(res, {
        transfer: 'basic',
        objects: objects.map((o) => ({
          ...o,
          actions: this.lfs.has(o.oid) ? undefined : { upload: { href: `${this.url}/lfs-upload/${o.oid}` } },
        })),
      });
    }
    if ((m = /^\/(datasets\/[^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p))) return this.resolve(req, res, m[1]!, m[2]!, m[3]!);
    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p))) return this.resolve(req, res, m[1]!, m[2]!, m[3]!);
    this.fail(res, 404, null, `no route ${req.method} ${p}`);
  }

  private resolve(req: http.IncomingMessage, res: http.ServerResponse, name: string, rev: string, file: string): void {
    const repo = this.repos.get(name);
    if (!this.authorize(req, res, name, repo)) return;
    const commit = this.commitOf(repo!, rev);
    if (!commit) return this.fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const bytes = repo!.commits.get(commit)![file];
    if (!bytes) return this.fail(res, 404, 'EntryNotFound', `${file} does not exist`);
    const etag = etagOf(file, bytes);
    const headers: Record<string, string | number> = {
      ETag: `"${etag}"`,
      'X-Repo-Commit': commit,
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
    };
    if (isLfs(file)) Object.assign(headers, { 'X-Linked-Etag': `"${etag}"`, 'X-Linked-Size': bytes.length });
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = bytes.length - 1;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), end) : end;
      headers['Content-Range'] = `bytes ${start}-${end}/${bytes.length}`;
    }
    const part = bytes.subarray(start, end + 1);
    res.writeHead(range ? 206 : 200, { ...headers, 'Content-Length': part.length });
    const drop = this.dropOnce;
    if (drop && drop.file === file && part.length > drop.after) {
      this.dropOnce = null;
      res.write(part.subarray(0, drop.after), () => setTimeout(() => res.socket?.destroy(), 100));
      return;
    }
    res.end(part);
  }

  private createRepo(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    payload: { name: string; organization: string; visibility?: string },
  ): void {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !this.tokens.has(token)) return this.fail(res, 401, null, 'Invalid credentials in Authorization header');
    const name = `${payload.organization}/${payload.name}`;
    if (this.repos.has(name)) return this.fail(res, 409, null, 'You already created this model repo');
    const empty = commitId(`${name}:empty`);
    this.repos.set(name, {
      commits: new Map([[empty, {}]]),
      refs: new Map([['main', empty]]),
      gated: false,
      private: payload.visibility === 'private',
    });
    this.json(res, { url: `${this.url}/${name}`, id: name });
  }

  private commit(res: http.ServerResponse, name: string, repo: Repo, branch: string, ndjson: string): void {
    const parent = repo.refs.get(branch);
    if (!parent) return this.fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${branch}`);
    const files: Files = { ...repo.commits.get(parent)! };
    for (const line of ndjson.split('\n').filter(Boolean)) {
      const { key, value } = JSON.parse(line) as { key: string; value: { path: string; content: string; oid: string } };
      if (key === 'file') files[value.path] = Buffer.from(value.content, 'base64');
      if (key === 'lfsFile') {
        const data = this.lfs.get(value.oid);
        if (!data) return this.fail(res, 422, null, `LFS object ${value.oid} was not uploaded`);
        files[value.path] = data;
      }
    }
    const oid = commitId(`${name}:${branch}:${repo.commits.size}`);
    repo.commits.set(oid, files);
    repo.refs.set(branch, oid);
    this.json(res, { commitOid: oid, commitUrl: `${this.url}/${name}/commit/${oid}`, hookOutput: '' });
  }
}
