/**
 * A fake GitHub REST API over real HTTP, for the scaler's GitHub App client (@octokit/auth-app,
 * @octokit/request): the endpoints of self-hosted runner registration, with GitHub's paths,
 * status codes and error bodies (`{ message, documentation_url, status }`).
 *
 *  - App JWT (RS256) verified with the App's public key: `iss` = App ID, `iat`/`exp` within
 *    GitHub's limits (exp at most 10 minutes ahead);
 *  - GET /orgs/{org}/installation, GET /repos/{owner}/{repo}/installation (JWT);
 *  - POST /app/installations/{id}/access_tokens (JWT) -> 201 { token, expires_at (1 h), ... };
 *  - POST /orgs/{org}|/repos/{owner}/{repo} /actions/runners/generate-jitconfig (installation
 *    token) -> 201 { runner, encoded_jit_config }; 422 without runner_group_id or labels, 409
 *    on a runner name already registered;
 *  - GET .../actions/runners (per_page, page, Link header), DELETE .../actions/runners/{id} (204);
 *  - webhooks (addHook, sendEvent): each event is POSTed to the hook's receiver and recorded as a
 *    delivery (`hook-delivery-item`: id, guid, delivered_at, redelivery, status, status_code,
 *    event, action); GET .../hooks/{hook_id}/deliveries lists them newest first (per_page up to
 *    100, cursor pagination through the Link header); POST .../hooks/{hook_id}/deliveries/
 *    {delivery_id}/attempts answers 202 and delivers the same event again (same guid,
 *    redelivery: true) just after. GitHub never retries a failed delivery by itself.
 * Faults: `failNext` answers the next matching requests with a status (429, 5xx, or a 403
 * secondary rate limit), with `retry-after` / `x-ratelimit-*` headers.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, randomUUID, verify } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRunner {
  id: number;
  name: string;
  os: string;
  status: 'online' | 'offline';
  busy: boolean;
  ephemeral: boolean;
  labels: { id: number; name: string; type: 'read-only' | 'custom' }[];
  runner_group_id: number;
  /** The scope it was registered in: `orgs/<org>` or `repos/<owner>/<repo>`. */
  scope: string;
  /** What the fake put in its configuration, to tell which config a pod got. */
  secretMarker: string;
}

/** A webhook delivery, as GitHub lists it. */
export interface FakeDelivery {
  id: number;
  guid: string;
  delivered_at: string;
  redelivery: boolean;
  duration: number;
  status: string;
  status_code: number;
  event: string;
  action: string | null;
  installation_id: number | null;
  repository_id: number | null;
}

/** Where a hook POSTs: answers the HTTP status (0: no answer). */
export type HookReceiver = (delivery: {
  readonly event: string;
  readonly guid: string;
  readonly payload: Record<string, unknown>;
}) => Promise<number>;

interface FakeHook {
  readonly scope: string;
  readonly receiver: HookReceiver;
  readonly deliveries: FakeDelivery[];
  readonly payloads: Map<string, { event: string; payload: Record<string, unknown> }>;
}

export interface GitHubCall {
  method: string;
  path: string;
  auth: 'jwt' | 'token' | 'none';
  status: number;
}

interface Fault {
  method: string;
  path: string | RegExp;
  status: number;
  remaining: number;
  message?: string;
  headers?: Record<string, string>;
}

const DOCS = 'https://docs.github.com/rest';

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface FakeGitHubOptions {
  readonly appId?: number;
  /** Installations: organisation logins and `owner/repo` names the App is installed on. */
  readonly installedOn?: readonly string[];
}

export class FakeGitHub {
  url = '';
  readonly appId: number;
  /** The App's private key (PEM), as the scaler is configured with it. */
  readonly privateKey: string;
  readonly calls: GitHubCall[] = [];
  private readonly publicKey: KeyObject;
  private readonly server: http.Server;
  private readonly installations = new Map<string, number>();
  private readonly tokens = new Map<string, { installationId: number; expiresAt: number }>();
  private readonly runnerStore = new Map<number, FakeRunner>();
  private faults: Fault[] = [];
  private nextRunnerId = 100;
  private readonly hooks = new Map<number, FakeHook>();
  private nextDeliveryId = 9_000_000_000;
  /** Redeliveries still being made (POST .../attempts answers before it delivers). */
  private readonly inFlight = new Set<Promise<void>>();
  /** Token lifetime (GitHub: one hour). */
  tokenLifetimeMs = 60 * 60_000;

  constructor(options: FakeGitHubOptions = {}) {
    this.appId = options.appId ?? 424242;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    this.publicKey = createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }));
    (options.installedOn ?? ['acme']).forEach((o, i) => {
      this.installations.set(o.toLowerCase(), 1000 + i);
    });
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  reset(): void {
    this.calls.length = 0;
    this.faults = [];
    this.runnerStore.clear();
    this.tokens.clear();
  }

  /** The next `count` requests matching method and path get `status`. */
  failNext(
    method: string,
    path: string | RegExp,
    status: number,
    count = 1,
    options: { message?: string; headers?: Record<string, string> } = {},
  ): void {
    this.faults.push({ method: method.toUpperCase(), path, status, remaining: count, ...options });
  }

  /** A secondary rate limit on the next `count` matching requests (403 with retry-after). */
  secondaryRateLimit(method: string, path: string | RegExp, count = 1, retryAfterSeconds = 60): void {
    this.failNext(method, path, 403, count, {
      message:
        'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.',
      headers: { 'retry-after': String(retryAfterSeconds) },
    });
  }

  /** A webhook of an organisation (`acme`) or repository (`owner/repo`) that POSTs to `receiver`. */
  addHook(hookId: number, target: string, receiver: HookReceiver): void {
    const scope = `${target.includes('/') ? 'repos' : 'orgs'}/${target.toLowerCase()}`;
    this.hooks.set(hookId, { scope, receiver, deliveries: [], payloads: new Map() });
  }

  /** GitHub sends an event to the hook: one delivery, recorded with what the receiver answered. */
  async sendEvent(
    hookId: number,
    event: string,
    payload: Record<string, unknown>,
    guid = randomUUID(),
  ): Promise<FakeDelivery> {
    const hook = this.hooks.get(hookId);
    if (!hook) throw new Error(`fake-github: no hook ${hookId}`);
    hook.payloads.set(guid, { event, payload: structuredClone(payload) });
    return this.deliver(hook, guid, false);
  }

  /** Every delivery of a hook, newest first. */
  deliveries(hookId: number): FakeDelivery[] {
    return [...(this.hooks.get(hookId)?.deliveries ?? [])].reverse().map((d) => ({ ...d }));
  }

  /** Waits until the redeliveries asked for so far have been made. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private async deliver(hook: FakeHook, guid: string, redelivery: boolean): Promise<FakeDelivery> {
    const sent = hook.payloads.get(guid);
    if (!sent) throw new Error(`fake-github: no event ${guid}`);
    const started = Date.now();
    let status = 0;
    try {
      status = await hook.receiver({ event: sent.event, guid, payload: structuredClone(sent.payload) });
    } catch {
      status = 0;
    }
    const repository = sent.payload.repository as { id?: unknown } | undefined;
    const delivery: FakeDelivery = {
      id: this.nextDeliveryId++,
      guid,
      delivered_at: new Date(started).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      redelivery,
      duration: (Date.now() - started) / 1000,
      status:
        status === 0 ? 'failed to connect' : status >= 200 && status < 300 ? 'OK' : `Invalid HTTP Response: ${status}`,
      status_code: status,
      event: sent.event,
      action: typeof sent.payload.action === 'string' ? sent.payload.action : null,
      installation_id: null,
      repository_id: typeof repository?.id === 'number' ? repository.id : null,
    };
    hook.deliveries.push(delivery);
    return { ...delivery };
  }

  runners(): FakeRunner[] {
    return [...this.runnerStore.values()].map((r) => structuredClone(r));
  }

  /** The runner a configuration registers (as the runner would read it), or undefined. */
  runnerOf(encodedJitConfig: string): FakeRunner | undefined {
    try {
      const outer = JSON.parse(Buffer.from(encodedJitConfig, 'base64').toString('utf8')) as Record<string, string>;
      const runner = JSON.parse(Buffer.from(outer['.runner'] ?? '', 'base64').toString('utf8')) as {
        AgentId: number;
      };
      return this.runnerStore.get(runner.AgentId);
    } catch {
      return undefined;
    }
  }

  /** A runner connects (its pod started): online; `busy` when it took a job. */
  setRunnerStatus(id: number, status: 'online' | 'offline', busy = false): void {
    const r = this.runnerStore.get(id);
    if (!r) throw new Error(`fake-github: no runner ${id}`);
    r.status = status;
    r.busy = busy;
  }

  /** Requests per kind, e.g. { 'POST generate-jitconfig': 3 }. */
  count(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.calls) {
      const kind = `${c.method} ${c.path
        .replace(/^\/(orgs|repos)\/[^/]+(\/[^/]+)?(?=\/(actions|installation))/, '')
        .replace(/\/app\/installations\/\d+/, '/app/installations/{id}')
        .replace(/\/runners\/\d+$/, '/runners/{id}')
        .replace(/\?.*$/, '')}`;
      out[kind] = (out[kind] ?? 0) + 1;
    }
    return out;
  }

  // --- HTTP ---------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = (req.method ?? 'GET').toUpperCase();
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const authz = String(req.headers.authorization ?? '');
    const call: GitHubCall = {
      method,
      path: url.pathname + url.search,
      auth: /^bearer\s+ey/i.test(authz) ? 'jwt' : authz ? 'token' : 'none',
      status: 0,
    };
    this.calls.push(call);
    let status = 200;
    let body: unknown;
    let headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    try {
      const fault = this.faults.find(
        (f) =>
          f.remaining > 0 &&
          (f.method === '*' || f.method === method) &&
          (typeof f.path === 'string' ? url.pathname.includes(f.path) : f.path.test(url.pathname)),
      );
      if (fault) {
        fault.remaining--;
        throw new ApiError(
          fault.status,
          fault.message ?? (fault.status === 429 ? 'API rate limit exceeded' : 'Server Error'),
          {
            ...(fault.status === 429 ? { 'retry-after': '30', 'x-ratelimit-remaining': '0' } : {}),
            ...fault.headers,
          },
        );
      }
      [status, body] = this.route(method, url, authz, raw);
    } catch (e) {
      if (e instanceof ApiError) {
        status = e.status;
        headers = { ...headers, ...e.headers };
        body = { message: e.message, documentation_url: DOCS, status: String(e.status) };
      } else {
        status = 500;
        body = { message: `fake-github: ${(e as Error).message}`, documentation_url: DOCS, status: '500' };
      }
    }
    call.status = status;
    if (status === 204) {
      res.writeHead(204);
      res.end();
      return;
    }
    if (Array.isArray(body) && 'link' in body) {
      headers.link = String((body as unknown as { link: string }).link);
      body = [...body];
    } else if (typeof body === 'object' && body && 'link' in (body as object)) {
      const { link, ...rest } = body as { link: string };
      headers.link = link;
      body = rest;
    }
    res.writeHead(status, headers);
    res.end(JSON.stringify(body));
  }

  private verifyJwt(authz: string): void {
    const m = /^bearer\s+([\w-]+)\.([\w-]+)\.([\w-]+)$/i.exec(authz);
    if (!m?.[1] || !m[2] || !m[3]) throw new ApiError(401, 'A JSON web token could not be decoded');
    const header = JSON.parse(Buffer.from(m[1], 'base64url').toString('utf8')) as { alg?: string };
    const payload = JSON.parse(Buffer.from(m[2], 'base64url').toString('utf8')) as {
      iss?: unknown;
      iat?: number;
      exp?: number;
    };
    const ok =
      header.alg === 'RS256' &&
      verify('RSA-SHA256', Buffer.from(`${m[1]}.${m[2]}`), this.publicKey, Buffer.from(m[3], 'base64url'));
    if (!ok) throw new ApiError(401, 'A JSON web token could not be decoded');
    const nowS = Math.floor(Date.now() / 1000);
    if (String(payload.iss) !== String(this.appId))
      throw new ApiError(401, "'Issuer' claim ('iss') must be an Integer");
    if (typeof payload.exp !== 'number' || typeof payload.iat !== 'number' || payload.exp <= nowS)
      throw new ApiError(
        401,
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
      );
    if (payload.exp - payload.iat > 600 + 60 || payload.iat > nowS + 60)
      throw new ApiError(401, "'Expiration time' claim ('exp') is too far in the future");
  }

  private installationOfToken(authz: string): number {
    const m = /^(?:token|bearer)\s+(\S+)$/i.exec(authz);
    const t = m?.[1] ? this.tokens.get(m[1]) : undefined;
    if (!t || t.expiresAt <= Date.now()) throw new ApiError(401, 'Bad credentials');
    return t.installationId;
  }

  private route(method: string, url: URL, authz: string, raw: string): [number, unknown] {
    const p = url.pathname;
    let m = /^\/(?:orgs\/([^/]+)|repos\/([^/]+\/[^/]+))\/installation$/.exec(p);
    if (m && method === 'GET') {
      this.verifyJwt(authz);
      const target = (m[1] ?? m[2] ?? '').toLowerCase();
      const id = this.installations.get(target);
      if (id === undefined) throw new ApiError(404, 'Not Found');
      return [
        200,
        {
          id,
          account: { login: target.split('/')[0], type: m[1] ? 'Organization' : 'User' },
          app_id: this.appId,
          target_type: m[1] ? 'Organization' : 'User',
          permissions: { organization_self_hosted_runners: 'write', administration: 'write' },
          events: [],
          repository_selection: 'all',
        },
      ];
    }
    m = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(p);
    if (m && method === 'POST') {
      this.verifyJwt(authz);
      const id = Number(m[1]);
      if (![...this.installations.values()].includes(id)) throw new ApiError(404, 'Not Found');
      const token = `ghs_${randomBytes(18).toString('hex')}`;
      const expiresAt = Date.now() + this.tokenLifetimeMs;
      this.tokens.set(token, { installationId: id, expiresAt });
      return [
        201,
        {
          token,
          expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
          permissions: { organization_self_hosted_runners: 'write' },
          repository_selection: 'all',
        },
      ];
    }
    m = /^\/(orgs\/[^/]+|repos\/[^/]+\/[^/]+)\/hooks\/(\d+)\/deliveries(?:\/(\d+)\/(attempts))?$/.exec(p);
    if (m?.[1]) {
      const scope = m[1].toLowerCase();
      const installation = this.installationOfToken(authz);
      if (this.installations.get(scope.replace(/^(orgs|repos)\//, '')) !== installation)
        throw new ApiError(403, 'Resource not accessible by integration');
      const hook = this.hooks.get(Number(m[2]));
      if (!hook || hook.scope !== scope) throw new ApiError(404, 'Not Found');
      if (m[4] === undefined && method === 'GET') return this.listDeliveries(hook, scope, Number(m[2]), url);
      if (m[4] === 'attempts' && method === 'POST') {
        const original = hook.deliveries.find((d) => d.id === Number(m?.[3]));
        if (!original) throw new ApiError(404, 'Not Found');
        const redelivery = this.deliver(hook, original.guid, true).then(() => undefined);
        this.inFlight.add(redelivery);
        void redelivery.finally(() => this.inFlight.delete(redelivery));
        return [202, {}];
      }
    }
    m = /^\/(orgs\/[^/]+|repos\/[^/]+\/[^/]+)\/actions\/runners(?:\/(generate-jitconfig|\d+))?$/.exec(p);
    if (m?.[1]) {
      const scope = m[1].toLowerCase();
      const installation = this.installationOfToken(authz);
      const target = scope.replace(/^(orgs|repos)\//, '');
      if (this.installations.get(target) !== installation)
        throw new ApiError(403, 'Resource not accessible by integration');
      if (m[2] === 'generate-jitconfig' && method === 'POST') return this.generate(scope, raw);
      if (m[2] === undefined && method === 'GET') return this.list(scope, url);
      if (m[2] && /^\d+$/.test(m[2]) && method === 'DELETE') {
        const r = this.runnerStore.get(Number(m[2]));
        if (!r || r.scope !== scope) throw new ApiError(404, 'Not Found');
        if (r.busy) throw new ApiError(422, `Bad request - Runner "${r.name}" is still running a job`);
        this.runnerStore.delete(r.id);
        return [204, undefined];
      }
    }
    throw new ApiError(404, 'Not Found');
  }

  private generate(scope: string, raw: string): [number, unknown] {
    let body: { name?: unknown; runner_group_id?: unknown; labels?: unknown; work_folder?: unknown };
    try {
      body = JSON.parse(raw || '{}');
    } catch {
      throw new ApiError(400, 'Problems parsing JSON');
    }
    if (typeof body.name !== 'string' || body.name === '')
      throw new ApiError(422, 'Invalid input: object is missing required key: name');
    if (typeof body.runner_group_id !== 'number')
      throw new ApiError(422, 'Invalid input: object is missing required key: runner_group_id');
    if (!Array.isArray(body.labels) || body.labels.length < 1 || body.labels.length > 100)
      throw new ApiError(422, 'Invalid input: labels must have between 1 and 100 items');
    const name = body.name;
    if ([...this.runnerStore.values()].some((r) => r.scope === scope && r.name.toLowerCase() === name.toLowerCase()))
      throw new ApiError(409, `Already exists - A runner with the name ${name} already exists.`);
    const id = this.nextRunnerId++;
    const marker = `fake-jit-secret-${randomBytes(8).toString('hex')}`;
    const readOnly = new Set(['self-hosted', 'linux', 'x64']);
    const runner: FakeRunner = {
      id,
      name,
      os: 'unknown',
      status: 'offline',
      busy: false,
      ephemeral: true,
      labels: (body.labels as string[]).map((l, i) => ({
        id: i + 1,
        name: l,
        type: readOnly.has(l.toLowerCase()) ? 'read-only' : 'custom',
      })),
      runner_group_id: body.runner_group_id,
      scope,
      secretMarker: marker,
    };
    this.runnerStore.set(id, runner);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64');
    // The shape of GitHub's configuration: the runner's own .runner / .credentials files.
    const encoded = b64({
      '.runner': b64({
        AgentId: id,
        AgentName: name,
        PoolId: body.runner_group_id,
        WorkFolder: body.work_folder ?? '_work',
        Ephemeral: true,
      }),
      '.credentials': b64({ Scheme: 'OAuth', Data: { ClientId: randomBytes(8).toString('hex') } }),
      '.credentials_rsaparams': b64({ marker }),
    });
    const { scope: _s, secretMarker: _m, ...shown } = runner;
    return [201, { runner: shown, encoded_jit_config: encoded }];
  }

  private listDeliveries(hook: FakeHook, scope: string, hookId: number, url: URL): [number, unknown] {
    const perPage = Math.min(100, Number(url.searchParams.get('per_page') ?? 30) || 30);
    const newestFirst = [...hook.deliveries].reverse();
    const cursor = url.searchParams.get('cursor');
    const start = cursor === null ? 0 : newestFirst.findIndex((d) => `v1_${d.id}` === cursor);
    if (start < 0) throw new ApiError(422, 'Invalid cursor');
    const items = newestFirst.slice(start, start + perPage);
    const after = newestFirst[start + perPage];
    const link = after
      ? `<${this.url}/${scope}/hooks/${hookId}/deliveries?per_page=${perPage}&cursor=v1_${after.id}>; rel="next"`
      : undefined;
    return [200, Object.assign(items, link ? { link } : {})];
  }

  private list(scope: string, url: URL): [number, unknown] {
    const perPage = Math.min(100, Number(url.searchParams.get('per_page') ?? 30) || 30);
    const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
    const all = [...this.runnerStore.values()].filter((r) => r.scope === scope).sort((a, b) => a.id - b.id);
    const items = all.slice((page - 1) * perPage, page * perPage).map(({ scope: _s, secretMarker: _m, ...r }) => r);
    const last = Math.max(1, Math.ceil(all.length / perPage));
    const link =
      page < last
        ? `<${this.url}/${scope}/actions/runners?per_page=${perPage}&page=${page + 1}>; rel="next", <${this.url}/${scope}/actions/runners?per_page=${perPage}&page=${last}>; rel="last"`
        : undefined;
    return [200, { total_count: all.length, runners: items, ...(link ? { link } : {}) }];
  }
}

export async function startFakeGitHub(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
  return new FakeGitHub(options).start();
}
