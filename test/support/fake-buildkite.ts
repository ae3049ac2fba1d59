/**
 * A fake Buildkite REST API v2 over HTTP, for the provider reconcile's one call: "List all
 * builds" of an organisation (`GET /v2/organizations/{org}/builds`), filtered by `state[]`,
 * `per_page` (at most 100) and `page`, with a `Link` header rel="next" as Buildkite paginates,
 * authenticated by `Authorization: Bearer <token>` (401 otherwise). Builds carry their `jobs`
 * (id, type, state, agent_query_rules, scheduled_at, web_url) and `pipeline` (slug, cluster_id),
 * the fields of Buildkite's build data model the reconcile reads. Every request is recorded.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeBuildkiteJob {
  id: string;
  type: 'script' | 'waiter' | 'manual' | 'trigger';
  state: string;
  agent_query_rules: string[];
  scheduled_at?: string;
  web_url?: string;
}

export interface FakeBuildkiteBuild {
  id: string;
  number: number;
  state: string;
  pipeline: { slug: string; cluster_id: string | null };
  jobs: FakeBuildkiteJob[];
}

export class FakeBuildkite {
  url = '';
  readonly calls: { path: string; status: number }[] = [];
  readonly builds: FakeBuildkiteBuild[] = [];
  private readonly server = http.createServer((req, res) => this.handle(req, res));

  constructor(
    readonly organization = 'acme',
    readonly token = 'bkua_fake_read_builds',
  ) {}

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v2`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      this.calls.push({ path: url.pathname + url.search, status });
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      answer(401, { message: 'Authentication required' });
      return;
    }
    if (req.method !== 'GET' || url.pathname !== `/v2/organizations/${this.organization}/builds`) {
      answer(404, { message: 'No route found' });
      return;
    }
    const states = url.searchParams.getAll('state[]');
    const perPage = Math.min(100, Number(url.searchParams.get('per_page') ?? 30) || 30);
    const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
    const all = [...this.builds]
      .filter((b) => states.length === 0 || states.includes(b.state))
      .sort((a, b) => b.number - a.number);
    const items = all.slice((page - 1) * perPage, page * perPage);
    const next = page * perPage < all.length;
    const link = next
      ? `<${this.url}/organizations/${this.organization}/builds?${new URLSearchParams([
          ...states.map((s): [string, string] => ['state[]', s]),
          ['per_page', String(perPage)],
          ['page', String(page + 1)],
        ]).toString()}>; rel="next"`
      : undefined;
    answer(200, items, link ? { link } : {});
  }
}
