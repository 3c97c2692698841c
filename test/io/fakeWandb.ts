/**
 * A W&B server double: an HTTP server on 127.0.0.1 (node:http) answering what `@wandb/sdk`
 * 0.5.x asks of the W&B API — the GraphQL `Viewer` query and `UpsertBucket` mutation at
 * /graphql, and the run's history at /files/<entity>/<project>/<run>/file_stream — checking
 * the API key as W&B does (HTTP Basic, user `api`). It records every request so tests can
 * assert what reached the server; `failFromNow()` makes it drop every later connection, as a
 * server that went away mid-run.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WandbRequest {
  method: string;
  path: string;
  /** The GraphQL operation (Viewer, UpsertBucket), for /graphql. */
  operation: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: a recorded request's JSON as the SDK sent it; the tests read the fields they assert.
  body: any;
}

/** One history row the SDK streamed, with the file_stream offset it was sent at. */
export interface HistoryRow {
  offset: number;
  row: Record<string, unknown>;
}

export class FakeWandb {
  readonly requests: WandbRequest[] = [];
  private failing = false;
  private constructor(
    private readonly server: http.Server,
    readonly apiKey: string,
    readonly defaultEntity: string,
  ) {}

  static async start(apiKey = 'k'.repeat(40), defaultEntity = 'tester'): Promise<FakeWandb> {
    let fake: FakeWandb | null = null;
    const server = http.createServer((req, res) => fake!.handle(req, res));
    fake = new FakeWandb(server, apiKey, defaultEntity);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** From now on every connection is dropped unanswered (the SDK's fetch then fails). */
  failFromNow(): void {
    this.failing = true;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Every history row the run streamed, in order of offset. */
  history(): HistoryRow[] {
    const rows: HistoryRow[] = [];
    for (const r of this.fileStreams()) {
      const file = r.body.files?.['wandb-history.jsonl'];
      if (!file) continue;
      file.content.forEach((line: string, i: number) => rows.push({ offset: file.offset + i, row: JSON.parse(line) }));
    }
    return rows.sort((a, b) => a.offset - b.offset);
  }

  /** The UpsertBucket mutations (the run's creation), their variables. */
  // biome-ignore lint/suspicious/noExplicitAny: the mutation's variables as sent, read by the tests field by field.
  upserts(): Array<Record<string, any>> {
    return this.requests.filter((r) => r.operation === 'UpsertBucket').map((r) => r.body.variables);
  }

  fileStreams(): WandbRequest[] {
    return this.requests.filter((r) => r.path.endsWith('/file_stream'));
  }

  /** The file_stream message that closes the run (`complete: true`), if it came. */
  completion(): { complete: boolean; exitcode: number } | null {
    return (
      this.fileStreams()
        .map((r) => r.body)
        .find((b) => b.complete === true) ?? null
    );
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.failing) {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? JSON.parse(text) : null;
      const path = (req.url ?? '').split('?')[0]!;
      const operation = path === '/graphql' ? (/^\s*(?:query|mutation)\s+(\w+)/.exec(body?.query ?? '')?.[1] ?? null) : null;
      this.requests.push({ method: req.method ?? '', path, operation, body });
      const send = (status: number, json: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      if (req.headers.authorization !== `Basic ${Buffer.from(`api:${this.apiKey}`).toString('base64')}`) {
        send(401, { errors: [{ message: 'user is not logged in' }] });
        return;
      }
      if (req.method === 'POST' && path === '/graphql' && operation === 'Viewer') {
        send(200, { data: { viewer: { id: 'VXNlcjox', entity: this.defaultEntity, flags: null, teams: { edges: [] } } } });
      } else if (req.method === 'POST' && path === '/graphql' && operation === 'UpsertBucket') {
        const v = body.variables;
        const entity = v.entity || this.defaultEntity;
        const bucket = {
          id: 'UnVuOjE=',
          name: v.name,
          displayName: v.displayName ?? 'gentle-fog-1',
          description: null,
          config: v.config,
          sweepName: null,
          project: { id: 'UHJvamVjdDox', name: v.project, entity: { id: 'RW50aXR5OjE=', name: entity } },
        };
        send(200, { data: { upsertBucket: { bucket, inserted: true } } });
      } else if (req.method === 'POST' && /^\/files\/[^/]+\/[^/]+\/[^/]+\/file_stream$/.test(path)) {
        send(200, {});
      } else {
        send(404, { error: `no route ${req.method} ${path}` });
      }
    });
  }
}
