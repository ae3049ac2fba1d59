/**
 * A fake Kubernetes API server over real HTTP, for the real `@kubernetes/client-node`.
 *
 * Serves discovery (/version, /api, /api/v1, /apis, /apis/batch, /apis/batch/v1), batch/v1 Jobs
 * (create, get, list with labelSelector/fieldSelector/limit/continue, update, merge-patch,
 * delete with propagationPolicy, the status subresource), core/v1 Pods (get, list, delete with
 * a grace period and a uid precondition), Secrets
 * (create, get, list, merge-patch, delete; at most 1 MiB of data) and Events (list, with the
 * events field selectors), with the real paths, status codes and `Status` error bodies, a global
 * resourceVersion counter, uids and creationTimestamps, and bearer-token authentication; over
 * HTTPS with `tls`; `fieldValidation=Strict` on create; with `authorize`, RBAC and the
 * OwnerReferencesPermissionEnforcement admission check. `refusePodCreates` makes the API server
 * refuse a Job's pods as admission would (quota, PodSecurity, ServiceAccount): FailedCreate Events.
 *
 * A small job controller creates the pods of a Job (Indexed: one index each) and recomputes the
 * Job status as the Kubernetes job controller does. Tests drive pods through
 * Pending -> Running -> Succeeded/Failed (`runPod`, `succeedPod`, `failPod`, `startAll`,
 * `succeedAll`, `expireDeadline`), or, for the local stack, `autoRun` moves them on timers.
 *
 * Differences from a real cluster (on purpose, to stay small): changes are applied synchronously
 * (the controller reconciles inside the request that caused the change), pods the controller
 * kills are removed at once (no graceful termination; a Job's deadline leaves them Failed with a
 * deletionTimestamp, as the real controller's terminating pods), a pod deleted through the API
 * stays terminating until a test ends it (no kubelet kills it when its grace period is over),
 * there is no watch, and a
 * `continue` token reads the current state after its key rather than a snapshot. Without
 * `fieldValidation=Strict` unknown fields are kept (a real server drops them with a warning).
 */

import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import {
  asObject,
  type Condition,
  getPath,
  isLabels,
  isObject,
  type JobObject,
  type JobSpec,
  type JobStatus,
  type JsonObject,
  type ObjectMeta,
  optionalString,
  type PodObject,
  type ValidJobInput,
} from './objects.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from './selectors.js';
import * as S from './status.js';
import { unknownFields, validateJob } from './validation.js';

export type RbacVerb = 'create' | 'get' | 'list' | 'watch' | 'delete' | 'deletecollection' | 'update' | 'patch';

/** One resource request, named as RBAC names it. */
export interface KubeCall {
  verb: RbacVerb;
  /** API group, '' for the core group. */
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** One list request as served: its selectors and how many items it returned. */
export interface KubeList {
  resource: 'jobs' | 'pods' | 'secrets' | 'events';
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  items: number;
}

export interface FakeKubeOptions {
  /** Bearer token the server accepts (random by default). */
  token?: string;
  /** Namespace written into the kubeconfig context (default `ci-agents`). */
  namespace?: string | undefined;
  /** Simulated cluster: pods start after `startMs` and succeed `runMs` later, on their own. */
  autoRun?: { startMs: number; runMs: number };
  /** Folder the temporary kubeconfig folder is made in (default the OS temp folder). */
  dir?: string;
  /** Clock of timestamps (creation, start, transitions), epoch ms (default Date.now). */
  clock?: () => number;
  /**
   * The authorizer (RBAC) of the token's user: a request it refuses gets 403 Forbidden, and so
   * does a create or patch that sets ownerReferences on an object the user may not `delete`, or
   * sets blockOwnerDeletion without `update` on the owner's `finalizers` subresource (admission
   * plugin OwnerReferencesPermissionEnforcement, plugin/pkg/admission/gc/gc_admission.go).
   * Absent: everything is allowed.
   */
  authorize?: (call: KubeCall) => boolean;
  /**
   * Serve HTTPS with this certificate (PEM; self-signed, for 127.0.0.1): the kubeconfig then
   * carries it as the cluster's CA, and `tlsHandshakes` counts the TLS connections made.
   */
  tls?: { key: string; cert: string };
}

export interface FaultMatch {
  /** HTTP method (GET, POST, ...) or '*'. */
  method: string;
  /** Substring of the path, or a RegExp tested against path + query. */
  path: string | RegExp;
}

interface Fault extends FaultMatch {
  status: number;
  remaining: number;
  retryAfterSeconds?: number;
}

interface Delay extends FaultMatch {
  ms: number;
  remaining: number;
}

interface JobState {
  succeededIndexes: Set<number>;
  failedIndexes: Set<number>;
  indexFailures: Map<number, number>;
  succeeded: number;
  failed: number;
  timers: NodeJS.Timeout[];
}

const JOBS = { group: 'batch', resource: 'jobs' } as const;
const PODS = { group: '', resource: 'pods' } as const;
const SECRETS = { group: '', resource: 'secrets' } as const;
/** The most a Secret's data may hold (corev1.MaxSecretSize: the decoded values, summed). */
export const MAX_SECRET_SIZE = 1024 * 1024;

/** A core/v1 Event as the job controller records it (aggregated: `count` grows on a repeat). */
type EventObject = {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: ObjectMeta;
  involvedObject: { apiVersion: string; kind: string; name: string; namespace: string; uid: string };
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source: { component: string };
  reportingComponent: string;
  [field: string]: unknown;
};
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A core/v1 Secret as stored (the scaler's just-in-time runner configurations). */
type SecretObject = {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: ObjectMeta;
  type: string;
  data?: Record<string, string>;
  [field: string]: unknown;
};
const MAX_INT32 = 2147483647;
/** The message of the 410 a continue token older than the compaction gets (k8s.io/apiserver storage/etcd3). */
const EXPIRED_CONTINUE =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';

class HttpError extends Error {
  constructor(
    readonly body: S.StatusBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.message);
  }
}

/** Which pods pods() and podSummaries() return. */
export interface PodFilter {
  readonly jobName?: string;
  readonly namespace?: string;
  readonly phase?: string;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** "1,3-5,7" as in status.completedIndexes. */
export function compressIndexes(set: Iterable<number>): string {
  const sorted = [...set].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] ?? Number.NaN) + 1) j++;
    if (j - i >= 2) parts.push(`${sorted[i]}-${sorted[j]}`);
    else for (let k = i; k <= j; k++) parts.push(String(sorted[k]));
    i = j + 1;
  }
  return parts.join(',');
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * A copy of a stored Job typed as the client's model, for tests and tooling: the JSON the client
 * would read (timestamps stay ISO strings where V1Job says Date, as they always did here).
 */
/**
 * `fieldValidation=Strict`: a body with a field its type does not have is refused, 400
 * BadRequest naming every such field (apiserver handlers/create.go, apimachinery
 * StrictDecodingError). Without it this fake keeps such fields (a real server drops them).
 */
function strict(url: URL, body: JsonObject, kind: 'Job' | 'Secret'): JsonObject {
  if (url.searchParams.get('fieldValidation') !== 'Strict') return body;
  const unknown = unknownFields(body, `V1${kind}`);
  if (unknown.length > 0)
    throw new HttpError(
      S.badRequest(
        `${kind} in version "v1" cannot be handled as a ${kind}: strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`,
      ),
    );
  return body;
}

/** A PATCH must be a merge patch (JSON or strategic: the same for the fields served here). */
function mergePatchType(req: http.IncomingMessage): void {
  const [mediaType = ''] = String(req.headers['content-type'] ?? '').split(';');
  const type = mediaType.trim();
  if (type !== 'application/merge-patch+json' && type !== 'application/strategic-merge-patch+json') {
    throw new HttpError(
      S.failure(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json`,
      ),
    );
  }
}

function toV1Job(j: JobObject): V1Job {
  return clone(j) as unknown as V1Job;
}

function toV1Pod(p: PodObject): V1Pod {
  return clone(p) as unknown as V1Pod;
}

function key(ns: string, name: string): string {
  return `${ns}/${name}`;
}

export class FakeKube {
  url = '';
  kubeconfigPath = '';
  readonly token: string;
  /** Every resource request, in order. */
  readonly calls: KubeCall[] = [];
  /** Every list request served, in order, with its selectors. */
  readonly lists: KubeList[] = [];

  /** TLS handshakes completed (with `tls`): one per new connection. */
  tlsHandshakes = 0;

  private server: http.Server | https.Server;
  private dir: string;
  private rv = 1000;
  private jobStore = new Map<string, JobObject>();
  private podStore = new Map<string, PodObject>();
  /** Pods created for each Job (by uid), so the controller never scans every pod (may hold removed ones). */
  private podsOf = new Map<string, Set<PodObject>>();
  private secretStore = new Map<string, SecretObject>();
  private eventStore = new Map<string, EventObject>();
  /** Per namespace, why the API server refuses pod creates there (quota, PodSecurity, ...). */
  private podRefusals = new Map<string, { message: string; jobs?: (job: V1Job) => boolean }>();
  private state = new Map<string, JobState>();
  private faults: Fault[] = [];
  private delays: Delay[] = [];
  private podTimers = new Set<NodeJS.Timeout>();
  private compactedRv = 0;

  /** The server's time as a Kubernetes timestamp (whole seconds). */
  private now(): string {
    return stamp((this.options.clock ?? Date.now)());
  }

  constructor(private readonly options: FakeKubeOptions = {}) {
    this.token = options.token ?? randomBytes(16).toString('hex');
    this.dir = mkdtempSync(join(options.dir ?? tmpdir(), 'fake-kube-'));
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    if (options.tls) {
      const server = https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler);
      server.on('secureConnection', () => this.tlsHandshakes++);
      this.server = server;
    } else this.server = http.createServer(handler);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.kubeconfigPath = join(this.dir, 'kubeconfig.yaml');
    const ns = this.options.namespace ?? 'ci-agents';
    // JSON is YAML: the client reads this like any kubeconfig.
    writeFileSync(
      this.kubeconfigPath,
      JSON.stringify(
        {
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'fake',
              cluster: this.options.tls
                ? {
                    server: this.url,
                    'certificate-authority-data': Buffer.from(this.options.tls.cert).toString('base64'),
                  }
                : // Plain HTTP: client-node only allows an http:// server with insecure-skip-tls-verify.
                  { server: this.url, 'insecure-skip-tls-verify': true },
            },
          ],
          users: [{ name: 'fake', user: { token: this.token } }],
          contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: ns } }],
          'current-context': 'fake',
        },
        null,
        2,
      ),
    );
    return this;
  }

  async stop(): Promise<void> {
    this.clearTimers();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops listening, dropping open connections, and keeps every object: an apiserver going down. */
  async suspend(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Listens again on the same port after suspend(): the apiserver is back with the same state. */
  async resume(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(Number(new URL(this.url).port), '127.0.0.1', resolve));
  }

  /**
   * As etcd's compaction at the current revision: a `continue` token of a list made before it
   * gets 410 Expired (the real server cannot serve a snapshot older than the compacted revision).
   */
  compact(): void {
    this.compactedRv = this.rv;
  }

  /** Forget every object, call, fault and timer (the server keeps running). */
  reset(): void {
    this.clearTimers();
    this.jobStore.clear();
    this.podStore.clear();
    this.podsOf.clear();
    this.secretStore.clear();
    this.eventStore.clear();
    this.podRefusals.clear();
    this.state.clear();
    this.faults = [];
    this.delays = [];
    this.calls.length = 0;
    this.lists.length = 0;
  }

  private clearTimers(): void {
    for (const t of this.podTimers) clearTimeout(t);
    this.podTimers.clear();
    for (const s of this.state.values()) s.timers.forEach(clearTimeout);
  }

  // --- inspection ------------------------------------------------------------------------------

  /** Jobs (copies), sorted by namespace/name. */
  jobs(namespace?: string): V1Job[] {
    return [...this.jobStore.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, j]) => j)
      .filter((j) => !namespace || j.metadata.namespace === namespace)
      .map(toV1Job);
  }

  job(name: string, namespace?: string): V1Job | undefined {
    const j = this.findJob(name, namespace);
    return j ? toV1Job(j) : undefined;
  }

  /** Pods (copies), optionally of one Job / namespace / phase, sorted by name. */
  pods(filter: PodFilter = {}): V1Pod[] {
    return this.podsMatching(filter).map(toV1Pod);
  }

  /**
   * Name and annotations of each pod matching, as pods() (no deep copy: for pollers that look at
   * every pod many times a second, like the simulated CI of the local stack).
   */
  podSummaries(filter: PodFilter = {}): { name: string; annotations: Record<string, string> }[] {
    return this.podsMatching(filter).map((p) => ({
      name: p.metadata.name,
      annotations: { ...p.metadata.annotations },
    }));
  }

  private podsMatching(filter: PodFilter): PodObject[] {
    return [...this.podStore.values()]
      .filter((p) => !filter.namespace || p.metadata.namespace === filter.namespace)
      .filter((p) => !filter.jobName || p.metadata.labels?.['job-name'] === filter.jobName)
      .filter((p) => !filter.phase || p.status.phase === filter.phase)
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  // --- fault injection -------------------------------------------------------------------------

  /** The next `count` requests matching method and path get `status` with a real Status body. */
  failNext(
    method: string,
    path: string | RegExp,
    status: number,
    count = 1,
    opts: { retryAfterSeconds?: number } = {},
  ): void {
    this.faults.push({ method: method.toUpperCase(), path, status, remaining: count, ...opts });
  }

  /** Delays responses by `ms` (all requests, or the next `count` matching ones). `delay(0)` clears. */
  delay(ms: number, match: Partial<FaultMatch> & { count?: number } = {}): void {
    if (ms <= 0) {
      this.delays = [];
      return;
    }
    this.delays.push({
      ms,
      method: (match.method ?? '*').toUpperCase(),
      path: match.path ?? '',
      remaining: match.count ?? Infinity,
    });
  }

  private matches(m: FaultMatch, method: string, path: string, full: string): boolean {
    if (m.method !== '*' && m.method !== method) return false;
    // A RegExp is tried on the path with and without the query (`/jobs$/` still matches a
    // create sent with ?fieldValidation=Strict).
    return typeof m.path === 'string' ? path.includes(m.path) : m.path.test(full) || m.path.test(path);
  }

  // --- HTTP ------------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = (req.method ?? 'GET').toUpperCase();
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    let status = 200;
    let body: unknown;
    let headers: Record<string, string> = {};
    try {
      const delay = this.delays.find(
        (d) => d.remaining > 0 && this.matches(d, method, url.pathname, url.pathname + url.search),
      );
      if (delay) {
        delay.remaining--;
        await new Promise((r) => setTimeout(r, delay.ms));
      }
      [status, body] = this.route(req, method, url, rawBody);
    } catch (e) {
      if (e instanceof HttpError) {
        status = e.body.code;
        body = e.body;
        headers = e.headers;
      } else {
        status = 500;
        body = S.failure(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
      }
    }
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }

  private route(req: http.IncomingMessage, method: string, url: URL, rawBody: string): [number, unknown] {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    // Discovery (non-resource URLs).
    const discovery = this.discovery(p);
    if (discovery) {
      if (method !== 'GET')
        throw new HttpError(S.methodNotAllowed(`the server does not allow this method on the requested resource`));
      return [200, discovery];
    }
    const m =
      /^\/apis\/batch\/v1(?:\/namespaces\/([^/]+))?\/(jobs)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(p) ??
      /^\/api\/v1(?:\/namespaces\/([^/]+))?\/(pods|secrets|events)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(p);
    if (!m) throw new HttpError(S.failure(404, 'NotFound', 'the server could not find the requested resource', {}));
    const [, namespace, resource, name, subresource] = m as unknown as [
      string,
      string | undefined,
      'jobs' | 'pods' | 'secrets' | 'events',
      string | undefined,
      string | undefined,
    ];
    const verb: RbacVerb =
      method === 'GET'
        ? name
          ? 'get'
          : url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1'
            ? 'watch'
            : 'list'
        : method === 'POST'
          ? 'create'
          : method === 'PUT'
            ? 'update'
            : method === 'PATCH'
              ? 'patch'
              : method === 'DELETE'
                ? name
                  ? 'delete'
                  : 'deletecollection'
                : 'get';
    const call: KubeCall = {
      verb,
      group: resource === 'jobs' ? 'batch' : '',
      resource,
      ...(subresource ? { subresource } : {}),
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
    };
    this.calls.push(call);

    if (req.headers.authorization !== `Bearer ${this.token}`) throw new HttpError(S.unauthorized());
    if (this.options.authorize && !this.options.authorize(call)) throw new HttpError(S.forbidden(call));
    const fault = this.faults.find(
      (f) => f.remaining > 0 && this.matches(f, method, url.pathname, url.pathname + url.search),
    );
    if (fault) {
      fault.remaining--;
      const retry = fault.retryAfterSeconds ?? (fault.status === 429 ? 1 : undefined);
      throw new HttpError(S.forCode(fault.status, retry), retry !== undefined ? { 'retry-after': String(retry) } : {});
    }

    const body = (): JsonObject => {
      try {
        const parsed: unknown = JSON.parse(rawBody || 'null');
        if (!isObject(parsed)) throw new Error('not an object');
        return parsed;
      } catch (e) {
        throw new HttpError(S.badRequest(`the body of the request was in an unknown format: ${(e as Error).message}`));
      }
    };

    // A path without the namespace or name the verb needs names no resource.
    const need = (value: string | undefined): string => {
      if (value === undefined)
        throw new HttpError(S.failure(404, 'NotFound', 'the server could not find the requested resource', {}));
      return value;
    };
    if (verb === 'watch') throw new HttpError(S.methodNotAllowed('watch is not supported by this fake API server'));
    if (subresource && subresource !== 'status') {
      throw new HttpError(S.failure(404, 'NotFound', 'the server could not find the requested resource', {}));
    }
    if (resource === 'events') {
      if (verb === 'list') return [200, this.list('events', namespace, url)];
      throw new HttpError(S.methodNotAllowed('this fake API server serves events read-only'));
    }
    if (resource === 'secrets') {
      if (verb === 'list') return [200, this.list('secrets', namespace, url)];
      if (verb === 'get') return [200, this.getSecret(need(namespace), need(name))];
      if (verb === 'create') return [201, this.createSecret(need(namespace), strict(url, body(), 'Secret'))];
      if (verb === 'patch') {
        mergePatchType(req);
        const current = this.getSecret(need(namespace), need(name));
        return [200, this.createSecret(need(namespace), asObject(mergePatch(current, body())), current)];
      }
      if (verb === 'delete') {
        const secret = this.getSecret(need(namespace), need(name));
        this.secretStore.delete(key(secret.metadata.namespace, secret.metadata.name));
        return [200, S.success(SECRETS, secret.metadata.name, secret.metadata.uid)];
      }
      throw new HttpError(S.methodNotAllowed(`${verb} on secrets is not supported by this fake API server`));
    }
    if (resource === 'pods') {
      if (verb === 'list') return [200, this.list('pods', namespace, url)];
      if (verb === 'get') return [200, this.getPod(need(namespace), need(name))];
      if (verb === 'delete')
        return [200, this.deletePod(need(namespace), need(name), url, rawBody.trim() ? body() : {})];
      throw new HttpError(S.methodNotAllowed(`${verb} on pods is not supported by this fake API server`));
    }
    if (!namespace && verb !== 'list')
      throw new HttpError(S.failure(404, 'NotFound', 'the server could not find the requested resource', {}));
    switch (verb) {
      case 'list':
        return [200, this.list('jobs', namespace, url)];
      case 'get':
        return [200, this.getJob(need(namespace), need(name))];
      case 'create':
        if (subresource) throw new HttpError(S.methodNotAllowed('create on a subresource'));
        return [201, this.createJob(need(namespace), strict(url, body(), 'Job'))];
      case 'update':
        return [200, this.updateJob(need(namespace), need(name), body(), subresource === 'status')];
      case 'patch': {
        mergePatchType(req);
        const current = this.getJob(need(namespace), need(name));
        return [
          200,
          // The merge of an object patch is an object.
          this.updateJob(
            need(namespace),
            need(name),
            asObject(mergePatch(current, body())),
            subresource === 'status',
            false,
          ),
        ];
      }
      case 'delete': {
        const opts: JsonObject = rawBody.trim() ? body() : {};
        const fromBody = opts.propagationPolicy;
        const policy =
          url.searchParams.get('propagationPolicy') ?? (fromBody === undefined ? undefined : String(fromBody));
        return [200, this.deleteJob(need(namespace), need(name), policy)];
      }
      default:
        throw new HttpError(S.methodNotAllowed(`${verb} is not supported by this fake API server`));
    }
  }

  private discovery(p: string): unknown {
    const batchGroup = {
      name: 'batch',
      versions: [{ groupVersion: 'batch/v1', version: 'v1' }],
      preferredVersion: { groupVersion: 'batch/v1', version: 'v1' },
    };
    switch (p) {
      case '/version':
        return { major: '1', minor: '34', gitVersion: 'v1.34.0-fake', platform: 'linux/amd64' };
      case '/api':
        return {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }],
        };
      case '/apis':
        return { kind: 'APIGroupList', apiVersion: 'v1', groups: [batchGroup] };
      case '/apis/batch':
        return { kind: 'APIGroup', apiVersion: 'v1', ...batchGroup };
      case '/api/v1':
        return {
          kind: 'APIResourceList',
          groupVersion: 'v1',
          resources: [
            {
              name: 'pods',
              singularName: 'pod',
              namespaced: true,
              kind: 'Pod',
              verbs: ['delete', 'get', 'list'],
              shortNames: ['po'],
            },
            { name: 'pods/status', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
            {
              name: 'secrets',
              singularName: 'secret',
              namespaced: true,
              kind: 'Secret',
              verbs: ['create', 'delete', 'get', 'list', 'patch'],
            },
            {
              name: 'events',
              singularName: 'event',
              namespaced: true,
              kind: 'Event',
              verbs: ['list'],
            },
          ],
        };
      case '/apis/batch/v1':
        return {
          kind: 'APIResourceList',
          apiVersion: 'v1',
          groupVersion: 'batch/v1',
          resources: [
            {
              name: 'jobs',
              singularName: 'job',
              namespaced: true,
              kind: 'Job',
              verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'],
              categories: ['all'],
            },
            { name: 'jobs/status', singularName: '', namespaced: true, kind: 'Job', verbs: ['get', 'patch', 'update'] },
          ],
        };
      default:
        return undefined;
    }
  }

  // --- storage ---------------------------------------------------------------------------------

  private nextRv(): string {
    return String(++this.rv);
  }

  private findJob(name: string, namespace?: string): JobObject | undefined {
    if (namespace) return this.jobStore.get(key(namespace, name));
    return [...this.jobStore.values()].find((j) => j.metadata.name === name);
  }

  private getJob(namespace: string, name: string): JobObject {
    const j = this.jobStore.get(key(namespace, name));
    if (!j) throw new HttpError(S.notFound(JOBS, name));
    return clone(j);
  }

  private getSecret(namespace: string, name: string): SecretObject {
    const secret = this.secretStore.get(key(namespace, name));
    if (!secret) throw new HttpError(S.notFound(SECRETS, name));
    return clone(secret);
  }

  /** Creates a Secret, or with `old` stores the patched `input` over it (its uid and creation kept). */
  private createSecret(namespace: string, input: JsonObject, old?: SecretObject): SecretObject {
    if (input.kind !== undefined && input.kind !== 'Secret')
      throw new HttpError(S.badRequest(`Secret in version "v1" cannot be handled as a Secret: wrong kind`));
    const meta = asObject(input.metadata);
    const name = typeof meta.name === 'string' ? meta.name : '';
    const causes: S.StatusCause[] = [];
    if (!name || name.length > 253 || !DNS_SUBDOMAIN.test(name))
      causes.push({
        reason: 'FieldValueInvalid',
        message: 'Invalid value: a lowercase RFC 1123 subdomain',
        field: 'metadata.name',
      });
    const data: Record<string, string> = {};
    let size = 0;
    for (const [k, v] of Object.entries(asObject(input.data))) {
      if (!/^[-._a-zA-Z0-9]+$/.test(k))
        causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: a valid config key', field: `data[${k}]` });
      if (typeof v !== 'string' || Buffer.from(v, 'base64').toString('base64') !== v)
        causes.push({ reason: 'FieldValueInvalid', message: 'illegal base64 data', field: `data[${k}]` });
      else {
        data[k] = v;
        size += Buffer.from(v, 'base64').length;
      }
    }
    // pkg/apis/core/validation ValidateSecret: the decoded values together (keys not counted).
    if (size > MAX_SECRET_SIZE)
      causes.push({
        reason: 'FieldValueTooLong',
        message: `Too long: may not be more than ${MAX_SECRET_SIZE} bytes`,
        field: 'data',
      });
    const owners = Array.isArray(meta.ownerReferences) ? meta.ownerReferences : [];
    owners.forEach((r: unknown, i: number) => {
      for (const f of ['apiVersion', 'kind', 'name', 'uid'])
        if (!asObject(r)[f])
          causes.push({
            reason: 'FieldValueRequired',
            message: 'Required value',
            field: `metadata.ownerReferences[${i}].${f}`,
          });
    });
    if (causes.length > 0) throw new HttpError(S.invalid('Secret', '', name, causes));
    if (!old && this.secretStore.has(key(namespace, name))) throw new HttpError(S.alreadyExists(SECRETS, name));
    this.enforceOwnerReferences(namespace, name, owners, old?.metadata.ownerReferences ?? []);
    const { ownerReferences: _owners, ...givenMeta } = meta;
    const secret: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        ...givenMeta,
        name,
        namespace,
        uid: old?.metadata.uid ?? randomUUID(),
        resourceVersion: this.nextRv(),
        creationTimestamp: old?.metadata.creationTimestamp ?? this.now(),
        ...(owners.length > 0 ? { ownerReferences: clone(owners) as NonNullable<ObjectMeta['ownerReferences']> } : {}),
      },
      type: typeof input.type === 'string' ? input.type : 'Opaque',
      data,
    };
    this.secretStore.set(key(namespace, name), secret);
    const created = clone(secret);
    this.collectGarbage();
    return created;
  }

  /**
   * OwnerReferencesPermissionEnforcement (gc_admission.go): changing a Secret's ownerReferences
   * (any on create) needs `delete` on that Secret; a reference that newly blocks its owner's
   * deletion needs `update` on the owner's `finalizers` subresource.
   */
  private enforceOwnerReferences(namespace: string, name: string, owners: unknown[], old: unknown[]): void {
    const authorize = this.options.authorize;
    if (!authorize || JSON.stringify(owners) === JSON.stringify(old)) return;
    const deny = (why: string) => {
      throw new HttpError(
        S.failure(403, 'Forbidden', `secrets "${name}" is forbidden: ${why}`, { name, kind: 'secrets' }),
      );
    };
    if (!authorize({ verb: 'delete', group: '', resource: 'secrets', namespace, name }))
      deny(`cannot set an ownerRef on a resource you can't delete`);
    const blockedBefore = new Set(
      old.map(asObject).flatMap((r) => (r.blockOwnerDeletion === true ? [String(r.uid)] : [])),
    );
    for (const r of owners.map(asObject)) {
      if (r.blockOwnerDeletion !== true || blockedBefore.has(String(r.uid))) continue;
      const group = String(r.apiVersion ?? '').includes('/') ? (String(r.apiVersion).split('/')[0] ?? '') : '';
      const resource = `${String(r.kind ?? '').toLowerCase()}s`;
      if (!authorize({ verb: 'update', group, resource, subresource: 'finalizers', namespace, name: String(r.name) }))
        deny(`cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on`);
    }
  }

  /**
   * The garbage collector: a Secret whose owners are all gone (no Job in its namespace with the
   * owner's uid) is deleted. The real one runs asynchronously; here it runs after each change.
   */
  private collectGarbage(): void {
    const uids = new Set([...this.jobStore.values()].map((j) => `${j.metadata.namespace}/${j.metadata.uid}`));
    for (const [k, secret] of this.secretStore) {
      const owners = secret.metadata.ownerReferences ?? [];
      if (owners.length > 0 && owners.every((o) => !uids.has(`${secret.metadata.namespace}/${o.uid}`)))
        this.secretStore.delete(k);
    }
  }

  /**
   * DELETE of a pod, as the API server does it (k8s.io/apiserver registry/rest/delete.go
   * BeforeDelete, pkg/registry/core/pod/strategy.go CheckGracefulDelete): a uid precondition that
   * does not match is 409 Conflict; the grace period is DeleteOptions.gracePeriodSeconds (query
   * or body), else the pod's terminationGracePeriodSeconds (default 30), 0 for an unscheduled or
   * ended pod. With a grace period the pod stays, with deletionTimestamp (now + grace) and
   * deletionGracePeriodSeconds, until it ends (runPod's kubelet: succeedPod, failPod), then goes;
   * a second delete only shortens it. An ended pod without finalizers goes at once. The fake
   * kills nothing when the grace period runs out (no kubelet).
   */
  private deletePod(namespace: string, name: string, url: URL, options: JsonObject): JsonObject {
    const pod = this.podStore.get(key(namespace, name));
    if (!pod) throw new HttpError(S.notFound(PODS, name));
    const preconditions = isObject(options.preconditions) ? options.preconditions : {};
    const uid = optionalString(preconditions.uid);
    if (uid !== undefined && uid !== pod.metadata.uid)
      throw new HttpError(
        S.failure(
          409,
          'Conflict',
          `Operation cannot be fulfilled on Pod "${name}": the UID in the precondition (${uid}) does not match the UID in record (${pod.metadata.uid}). The object might have been deleted and then recreated`,
          { name, kind: 'Pod' },
        ),
      );
    const asked = url.searchParams.get('gracePeriodSeconds') ?? options.gracePeriodSeconds;
    const fromSpec = pod.spec.terminationGracePeriodSeconds;
    let grace = asked === undefined || asked === null ? (typeof fromSpec === 'number' ? fromSpec : 30) : Number(asked);
    if (!Number.isInteger(grace))
      throw new HttpError(S.badRequest(`invalid gracePeriodSeconds: ${JSON.stringify(asked)}`));
    const ended = pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed';
    const unscheduled = pod.status.conditions.some((c) => c.type === 'PodScheduled' && c.status === 'False');
    if (ended || unscheduled) grace = 0;
    if (grace < 0) grace = 1;
    const t = Date.parse(this.now()) + grace * 1000;
    const current =
      pod.metadata.deletionTimestamp === undefined ? undefined : Date.parse(String(pod.metadata.deletionTimestamp));
    if (current === undefined || t < current) {
      pod.metadata.deletionTimestamp = stamp(t);
      pod.metadata.deletionGracePeriodSeconds = grace;
      pod.metadata.resourceVersion = this.nextRv();
    }
    const out = clone(pod);
    if (ended && (pod.metadata.finalizers ?? []).length === 0) this.podStore.delete(key(namespace, name));
    else {
      const job = this.ownerOf(pod);
      if (job) this.reconcile(job);
    }
    return out as unknown as JsonObject;
  }

  private getPod(namespace: string, name: string): PodObject {
    const p = this.podStore.get(key(namespace, name));
    if (!p) throw new HttpError(S.notFound(PODS, name));
    return clone(p);
  }

  private list(resource: 'jobs' | 'pods' | 'secrets' | 'events', namespace: string | undefined, url: URL): JsonObject {
    const store: ReadonlyMap<string, JobObject | PodObject | SecretObject | EventObject> =
      resource === 'jobs'
        ? this.jobStore
        : resource === 'pods'
          ? this.podStore
          : resource === 'secrets'
            ? this.secretStore
            : this.eventStore;
    let labelReqs: ReturnType<typeof parseLabelSelector>;
    let fieldReqs: ReturnType<typeof parseFieldSelector>;
    try {
      labelReqs = parseLabelSelector(url.searchParams.get('labelSelector'));
      fieldReqs = parseFieldSelector(
        url.searchParams.get('fieldSelector'),
        resource === 'pods'
          ? ['metadata.name', 'metadata.namespace', 'status.phase', 'spec.nodeName']
          : resource === 'secrets'
            ? ['metadata.name', 'metadata.namespace', 'type']
            : resource === 'events'
              ? // pkg/registry/core/event/strategy.go ToSelectableFields
                [
                  'metadata.name',
                  'metadata.namespace',
                  'involvedObject.kind',
                  'involvedObject.namespace',
                  'involvedObject.name',
                  'involvedObject.uid',
                  'involvedObject.apiVersion',
                  'reason',
                  'reportingComponent',
                  'type',
                ]
              : ['metadata.name', 'metadata.namespace', 'status.successful'],
      );
    } catch (e) {
      if (e instanceof SelectorError) throw new HttpError(S.badRequest(e.message));
      throw e;
    }
    const limitRaw = url.searchParams.get('limit');
    const limit = limitRaw === null ? 0 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 0) throw new HttpError(S.badRequest(`invalid limit: ${limitRaw}`));
    let after = '';
    let listRv = String(this.rv);
    const cont = url.searchParams.get('continue');
    if (cont) {
      try {
        const decoded = asObject(JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')));
        if (decoded.v !== 'fake/1' || typeof decoded.start !== 'string' || typeof decoded.rv !== 'string')
          throw new Error('bad');
        after = decoded.start;
        listRv = decoded.rv;
      } catch {
        throw new HttpError(
          S.badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)'),
        );
      }
      if (Number(listRv) < this.compactedRv) throw new HttpError(S.failure(410, 'Expired', EXPIRED_CONTINUE));
    }
    const all = [...store.entries()]
      .filter(([k]) => (!namespace || k.startsWith(`${namespace}/`)) && k > after)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .filter(([, o]) => matchesLabels(labelReqs, o.metadata.labels) && matchesFields(fieldReqs, o));
    const page = limit > 0 ? all.slice(0, limit) : all;
    const more = limit > 0 && all.length > limit;
    const metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number } = {
      resourceVersion: listRv,
    };
    if (more) {
      metadata.continue = Buffer.from(JSON.stringify({ v: 'fake/1', rv: listRv, start: page.at(-1)?.[0] })).toString(
        'base64url',
      );
      if (labelReqs.length === 0 && fieldReqs.length === 0) metadata.remainingItemCount = all.length - limit;
    }
    const labelSelector = url.searchParams.get('labelSelector');
    const fieldSelector = url.searchParams.get('fieldSelector');
    this.lists.push({
      resource,
      ...(namespace ? { namespace } : {}),
      ...(labelSelector ? { labelSelector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
      ...(limit > 0 ? { limit } : {}),
      items: page.length,
    });
    return {
      kind: { jobs: 'JobList', pods: 'PodList', secrets: 'SecretList', events: 'EventList' }[resource],
      apiVersion: resource === 'jobs' ? 'batch/v1' : 'v1',
      metadata,
      // Items of a list carry no kind/apiVersion, as with a real server. Not deep copies: handle()
      // serializes the answer right after route() returns, before anything can change the store
      // (copying every object of every list was most of this server's CPU under a burst).
      items: page.map(([, o]) => {
        const { kind: _k, apiVersion: _a, ...rest } = o;
        return rest;
      }),
    };
  }

  // --- Jobs ------------------------------------------------------------------------------------

  private createJob(namespace: string, input: JsonObject): JobObject {
    if (input.kind !== undefined && input.kind !== 'Job')
      throw new HttpError(
        S.badRequest(`Job in version "v1" cannot be handled as a Job: wrong kind ${String(input.kind)}`),
      );
    if (input.apiVersion !== undefined && input.apiVersion !== 'batch/v1')
      throw new HttpError(S.badRequest(`apiVersion ${String(input.apiVersion)} is not batch/v1`));
    const draft = clone(input);
    draft.metadata ??= {};
    const meta = asObject(draft.metadata);
    if (meta.namespace && meta.namespace !== namespace) {
      throw new HttpError(
        S.badRequest('the namespace of the provided object does not match the namespace sent on the request'),
      );
    }
    if (!meta.name && meta.generateName) {
      meta.name = String(meta.generateName) + randomBytes(3).toString('hex').slice(0, 5);
    }
    const causes = validateJob(draft);
    if (causes.length > 0) throw new HttpError(S.invalid('Job', 'batch', String(meta.name ?? ''), causes));
    // validateJob checked what ValidJobInput describes (name, pod template, containers, rules).
    const valid = draft as ValidJobInput;
    const name = valid.metadata.name;
    if (this.jobStore.has(key(namespace, name))) throw new HttpError(S.alreadyExists(JOBS, name));

    const uid = randomUUID();
    const { deletionTimestamp: _deleted, ...givenMeta } = valid.metadata;
    const given = valid.spec;
    const completions = given.completions === undefined && given.parallelism === undefined ? 1 : given.completions;
    const selectorLabels = { 'batch.kubernetes.io/controller-uid': uid };
    const spec: JobSpec = {
      ...given,
      parallelism: given.parallelism ?? 1,
      ...(completions !== undefined ? { completions } : {}),
      completionMode: given.completionMode ?? 'NonIndexed',
      backoffLimit: given.backoffLimit ?? (given.backoffLimitPerIndex != null ? MAX_INT32 : 6),
      suspend: given.suspend ?? false,
      podReplacementPolicy: given.podReplacementPolicy ?? (given.podFailurePolicy ? 'Failed' : 'TerminatingOrFailed'),
      selector: { matchLabels: selectorLabels },
      template: {
        ...given.template,
        metadata: {
          ...(given.template.metadata ?? {}),
          labels: {
            ...(given.template.metadata?.labels ?? {}),
            'batch.kubernetes.io/controller-uid': uid,
            'batch.kubernetes.io/job-name': name,
            'controller-uid': uid,
            'job-name': name,
          },
        },
      },
    };
    for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
    const job: JobObject = {
      ...valid,
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        ...givenMeta,
        name,
        namespace,
        uid,
        resourceVersion: this.nextRv(),
        generation: 1,
        creationTimestamp: this.now(),
      },
      spec,
      status: {},
    };
    this.jobStore.set(key(namespace, name), job);
    this.state.set(uid, {
      succeededIndexes: new Set(),
      failedIndexes: new Set(),
      indexFailures: new Map(),
      succeeded: 0,
      failed: 0,
      timers: [],
    });
    const response = clone(job);
    this.reconcile(job);
    if (this.options.autoRun && spec.activeDeadlineSeconds) {
      const t = setTimeout(
        () => this.jobStore.get(key(namespace, name)) === job && this.expireDeadline(name, namespace),
        spec.activeDeadlineSeconds * 1000,
      );
      t.unref();
      this.state.get(uid)?.timers.push(t);
    }
    return response;
  }

  private updateJob(
    namespace: string,
    name: string,
    input: JsonObject,
    statusOnly: boolean,
    checkRv = true,
  ): JobObject {
    const job = this.jobStore.get(key(namespace, name));
    if (!job) throw new HttpError(S.notFound(JOBS, name));
    const inMeta = asObject(input.metadata);
    const inSpec = asObject(input.spec);
    const rv = inMeta.resourceVersion;
    if (checkRv && rv !== undefined && rv !== job.metadata.resourceVersion) throw new HttpError(S.conflict(JOBS, name));
    if (statusOnly) {
      // The status subresource stores the status as sent (this fake does not validate it).
      job.status = clone(asObject(input.status)) as JobStatus;
    } else {
      const causes: S.StatusCause[] = [];
      for (const field of [
        'template',
        'completionMode',
        'backoffLimitPerIndex',
        'podFailurePolicy',
        'selector',
        'completions',
      ]) {
        if (inSpec[field] !== undefined && JSON.stringify(inSpec[field]) !== JSON.stringify(job.spec[field])) {
          causes.push({
            reason: 'FieldValueInvalid',
            message: 'Invalid value: field is immutable',
            field: `spec.${field}`,
          });
        }
      }
      const labels = isLabels(inMeta.labels) ? inMeta.labels : undefined;
      const annotations = isLabels(inMeta.annotations) ? inMeta.annotations : undefined;
      for (const [field, value] of [
        ['labels', inMeta.labels],
        ['annotations', inMeta.annotations],
      ] as const) {
        if (value !== undefined && !isLabels(value))
          causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: must be a map of strings', field });
      }
      const mutable = ['parallelism', 'suspend', 'activeDeadlineSeconds', 'ttlSecondsAfterFinished'];
      for (const field of mutable) {
        const v = inSpec[field];
        const ok =
          field === 'suspend' ? typeof v === 'boolean' : typeof v === 'number' && Number.isInteger(v) && v >= 0;
        if (v !== undefined && !ok) {
          causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: wrong type', field: `spec.${field}` });
        }
      }
      if (causes.length) throw new HttpError(S.invalid('Job', 'batch', name, causes));
      if (labels) job.metadata.labels = labels;
      if (annotations) job.metadata.annotations = annotations;
      for (const field of mutable) {
        if (inSpec[field] !== undefined && inSpec[field] !== job.spec[field]) {
          job.spec[field] = inSpec[field];
          job.metadata.generation++;
        }
      }
    }
    job.metadata.resourceVersion = this.nextRv();
    if (!statusOnly) this.reconcile(job);
    return clone(job);
  }

  private deleteJob(namespace: string, name: string, policy: string | undefined): S.StatusBody {
    const job = this.jobStore.get(key(namespace, name));
    if (!job) throw new HttpError(S.notFound(JOBS, name));
    if (policy !== undefined && !['Background', 'Foreground', 'Orphan'].includes(policy)) {
      throw new HttpError(S.badRequest(`propagationPolicy: Unsupported value: "${policy}"`));
    }
    this.removeJob(job, policy ?? 'Orphan');
    return S.success(JOBS, name, job.metadata.uid);
  }

  /**
   * Removes a Job like the API server + garbage collector would. batch/v1 Jobs default to
   * ORPHANING their pods when no propagationPolicy is given (unlike kubectl, which sends
   * Background) — a client that forgets the policy leaves its pods running.
   */
  private removeJob(job: JobObject, policy: string): void {
    const uid = job.metadata.uid;
    this.jobStore.delete(key(job.metadata.namespace, job.metadata.name));
    this.state.get(uid)?.timers.forEach(clearTimeout);
    this.state.delete(uid);
    for (const pod of this.ownedPods(uid)) {
      if (policy === 'Orphan') {
        delete pod.metadata.ownerReferences;
        pod.metadata.resourceVersion = this.nextRv();
      } else this.podStore.delete(key(pod.metadata.namespace, pod.metadata.name));
    }
    this.podsOf.delete(uid);
    if (policy !== 'Orphan') this.collectGarbage();
  }

  /** The pods in the store that the Job of this uid owns. */
  private ownedPods(uid: string): PodObject[] {
    const owned: PodObject[] = [];
    for (const p of this.podsOf.get(uid) ?? []) {
      if (
        this.podStore.get(key(p.metadata.namespace, p.metadata.name)) === p &&
        p.metadata.ownerReferences?.[0]?.uid === uid
      )
        owned.push(p);
    }
    return owned;
  }

  // --- job controller --------------------------------------------------------------------------

  private jobFinished(job: JobObject): boolean {
    return (job.status.conditions ?? []).some(
      (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
    );
  }

  /** The Job's pods that have not ended, being deleted or not. */
  private livePods(job: JobObject): PodObject[] {
    return this.ownedPods(job.metadata.uid).filter((p) => p.status.phase === 'Pending' || p.status.phase === 'Running');
  }

  /** Not ended and not being deleted (controller_utils.go IsPodActive): `status.active`. */
  private activePods(job: JobObject): PodObject[] {
    return this.livePods(job).filter((p) => p.metadata.deletionTimestamp === undefined);
  }

  /** Not ended and being deleted (controller_utils.go IsPodTerminating): `status.terminating`. */
  private terminatingPods(job: JobObject): PodObject[] {
    return this.livePods(job).filter((p) => p.metadata.deletionTimestamp !== undefined);
  }

  /**
   * podReplacementPolicy Failed (or a podFailurePolicy): a pod being deleted is replaced only once
   * it has ended (job_controller.go onlyReplaceFailedPods, manageJob; indexed_job_utils.go
   * firstPendingIndexes).
   */
  private onlyReplaceFailedPods(job: JobObject): boolean {
    return job.spec.podReplacementPolicy === 'Failed' || job.spec.podFailurePolicy != null;
  }

  private createPod(job: JobObject, index: number | undefined): void {
    const jobName: string = job.metadata.name;
    const suffix = randomBytes(4).toString('hex').slice(0, 5);
    const name = index === undefined ? `${jobName}-${suffix}` : `${jobName}-${index}-${suffix}`;
    const refusal = this.podRefusals.get(job.metadata.namespace);
    if (refusal && (!refusal.jobs || refusal.jobs(toV1Job(job)))) {
      // The job controller's create is refused by admission: only an Event says so
      // (controller_utils.go: Warning FailedCreate "Error creating: <the server's message>").
      this.recordEvent(job, 'FailedCreate', `Error creating: pods "${name}" is forbidden: ${refusal.message}`);
      return;
    }
    const template = clone(job.spec.template);
    const labels = { ...(template.metadata?.labels ?? {}) };
    const annotations = { ...(template.metadata?.annotations ?? {}) };
    const spec = template.spec;
    if (index !== undefined) {
      labels['batch.kubernetes.io/job-completion-index'] = String(index);
      annotations['batch.kubernetes.io/job-completion-index'] = String(index);
      spec.hostname ??= `${jobName}-${index}`;
      for (const c of spec.containers)
        c.env = [
          ...(c.env ?? []),
          {
            name: 'JOB_COMPLETION_INDEX',
            valueFrom: {
              fieldRef: { apiVersion: 'v1', fieldPath: "metadata.labels['batch.kubernetes.io/job-completion-index']" },
            },
          },
        ];
    }
    const pod: PodObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        generateName: name.slice(0, -suffix.length),
        namespace: job.metadata.namespace,
        uid: randomUUID(),
        resourceVersion: this.nextRv(),
        creationTimestamp: this.now(),
        labels,
        annotations,
        ownerReferences: [
          {
            apiVersion: 'batch/v1',
            kind: 'Job',
            name: jobName,
            uid: job.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
        finalizers: ['batch.kubernetes.io/job-tracking'],
      },
      spec: { serviceAccountName: 'default', ...spec },
      status: {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: this.now() }],
        qosClass: 'Burstable',
      },
    };
    this.podStore.set(key(pod.metadata.namespace, name), pod);
    const owned = this.podsOf.get(job.metadata.uid) ?? new Set<PodObject>();
    owned.add(pod);
    this.podsOf.set(job.metadata.uid, owned);
    const auto = this.options.autoRun;
    if (auto) {
      const start = setTimeout(() => {
        this.podTimers.delete(start);
        if (this.podStore.get(key(pod.metadata.namespace, name)) !== pod || pod.status.phase !== 'Pending') return;
        this.runPod(name, pod.metadata.namespace);
        const finish = setTimeout(() => {
          this.podTimers.delete(finish);
          if (this.podStore.get(key(pod.metadata.namespace, name)) === pod && pod.status.phase === 'Running')
            this.succeedPod(name, pod.metadata.namespace);
        }, auto.runMs);
        finish.unref();
        this.podTimers.add(finish);
      }, auto.startMs);
      start.unref();
      this.podTimers.add(start);
    }
  }

  /** An Event on a Job, aggregated as the event recorder does (same reason and message: count++). */
  private recordEvent(job: JobObject, reason: string, message: string): void {
    const t = this.now();
    const k = key(
      job.metadata.namespace,
      `${job.metadata.name}.${createHash('sha256')
        .update(reason + message)
        .digest('hex')
        .slice(0, 16)}`,
    );
    const seen = this.eventStore.get(k);
    if (seen) {
      seen.count++;
      seen.lastTimestamp = t;
      seen.metadata.resourceVersion = this.nextRv();
      return;
    }
    this.eventStore.set(k, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {
        name: k.slice(k.indexOf('/') + 1),
        namespace: job.metadata.namespace,
        uid: randomUUID(),
        resourceVersion: this.nextRv(),
        creationTimestamp: t,
      },
      involvedObject: {
        apiVersion: 'batch/v1',
        kind: 'Job',
        name: job.metadata.name,
        namespace: job.metadata.namespace,
        uid: job.metadata.uid,
      },
      reason,
      message,
      type: 'Warning',
      count: 1,
      firstTimestamp: t,
      lastTimestamp: t,
      source: { component: 'job-controller' },
      reportingComponent: 'job-controller',
    });
  }

  /**
   * From now on the API server refuses the pods of Jobs in `namespace` with `message` (what the
   * admission plugin says: a ResourceQuota `exceeded quota: ...`, `violates PodSecurity ...`,
   * `error looking up service account ...`), for every Job there or those `jobs` selects (a
   * queue whose template names a missing ServiceAccount); undefined lifts it. Pods are retried.
   */
  refusePodCreates(namespace: string, message: string | undefined, jobs?: (job: V1Job) => boolean): void {
    if (message === undefined) this.podRefusals.delete(namespace);
    else this.podRefusals.set(namespace, { message, ...(jobs ? { jobs } : {}) });
    for (const job of this.jobStore.values()) if (job.metadata.namespace === namespace) this.reconcile(job);
  }

  /** Events (copies), sorted by name. */
  events(namespace?: string): EventObject[] {
    return [...this.eventStore.values()]
      .filter((e) => !namespace || e.metadata.namespace === namespace)
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
      .map((e) => clone(e));
  }

  private finish(job: JobObject, type: 'Complete' | 'Failed', reason: string, message: string): void {
    const t = this.now();
    const pre = type === 'Complete' ? 'SuccessCriteriaMet' : 'FailureTarget';
    job.status.conditions = [
      ...(job.status.conditions ?? []),
      { type: pre, status: 'True', reason, message, lastProbeTime: t, lastTransitionTime: t },
      { type, status: 'True', reason, message, lastProbeTime: t, lastTransitionTime: t },
    ];
    if (type === 'Complete') job.status.completionTime = t;
    // Kill what still runs (a real controller deletes the pods; they vanish after termination).
    for (const p of this.livePods(job)) this.podStore.delete(key(p.metadata.namespace, p.metadata.name));
    const ttl = job.spec.ttlSecondsAfterFinished;
    // The TTL-after-finished controller deletes it (with its pods) ttl seconds after it finished.
    if (ttl !== undefined) {
      const timer = setTimeout(() => {
        if (this.jobStore.get(key(job.metadata.namespace, job.metadata.name)) === job)
          this.removeJob(job, 'Background');
      }, ttl * 1000);
      timer.unref();
      this.state.get(job.metadata.uid)?.timers.push(timer);
    }
  }

  /** Creates missing pods, detects terminal states and writes the status, like the job controller. */
  private reconcile(job: JobObject): void {
    const st = this.state.get(job.metadata.uid);
    if (!st) return;
    const spec = job.spec;
    const indexed = spec.completionMode === 'Indexed';
    const before = JSON.stringify(job.status);
    job.status ??= {};
    if (!this.jobFinished(job) && !spec.suspend) {
      job.status.startTime ??= this.now();
      // Indexed Jobs always have completions (validated on create).
      const completions: number = spec.completions ?? 0;
      if (indexed) {
        if (st.succeededIndexes.size >= completions)
          this.finish(job, 'Complete', 'CompletionsReached', 'Reached expected number of succeeded pods');
        else if (spec.maxFailedIndexes != null && st.failedIndexes.size > spec.maxFailedIndexes) {
          this.finish(
            job,
            'Failed',
            'MaxFailedIndexesExceeded',
            'Job has exceeded the specified maximal number of failed indexes',
          );
        } else if (st.succeededIndexes.size + st.failedIndexes.size >= completions && st.failedIndexes.size > 0) {
          this.finish(job, 'Failed', 'FailedIndexes', 'Job has failed indexes');
        } else if (st.failed > spec.backoffLimit) {
          this.finish(job, 'Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
        } else {
          const active = this.activePods(job);
          const waited = this.onlyReplaceFailedPods(job) ? this.terminatingPods(job) : [];
          const busy = new Set(
            [...active, ...waited].map((p) => Number(p.metadata.labels?.['batch.kubernetes.io/job-completion-index'])),
          );
          let room = spec.parallelism - active.length - waited.length;
          for (let i = 0; i < completions && room > 0; i++) {
            if (st.succeededIndexes.has(i) || st.failedIndexes.has(i) || busy.has(i)) continue;
            this.createPod(job, i);
            room--;
          }
        }
      } else if (completions !== undefined && st.succeeded >= completions) {
        this.finish(job, 'Complete', 'CompletionsReached', 'Reached expected number of succeeded pods');
      } else if (st.failed > spec.backoffLimit) {
        this.finish(job, 'Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
      } else {
        const active =
          this.activePods(job).length + (this.onlyReplaceFailedPods(job) ? this.terminatingPods(job).length : 0);
        const want = Math.min(
          spec.parallelism,
          completions === undefined ? spec.parallelism : completions - st.succeeded,
        );
        for (let i = active; i < want; i++) this.createPod(job, undefined);
      }
    }
    const active = this.activePods(job);
    const s = job.status;
    const setOrDrop = (k: string, v: number) => {
      if (v > 0) s[k] = v;
      else delete s[k];
    };
    setOrDrop('active', active.length);
    setOrDrop('succeeded', indexed ? st.succeededIndexes.size : st.succeeded);
    setOrDrop('failed', st.failed);
    s.ready = active.filter(
      (p) => p.status.phase === 'Running' && p.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
    ).length;
    s.terminating = this.terminatingPods(job).length;
    if (indexed) {
      const completed = compressIndexes(st.succeededIndexes);
      if (completed) s.completedIndexes = completed;
      else delete s.completedIndexes;
      if (spec.backoffLimitPerIndex != null) s.failedIndexes = compressIndexes(st.failedIndexes);
    }
    s.uncountedTerminatedPods ??= {};
    if (JSON.stringify(job.status) !== before) job.metadata.resourceVersion = this.nextRv();
  }

  private podByName(name: string, namespace?: string): PodObject {
    const pod = namespace
      ? this.podStore.get(key(namespace, name))
      : [...this.podStore.values()].find((p) => p.metadata.name === name);
    if (!pod) throw new Error(`fake-kube: no pod ${name}`);
    return pod;
  }

  private ownerOf(pod: PodObject): JobObject | undefined {
    const ref = pod.metadata.ownerReferences?.[0];
    if (!ref) return undefined;
    return this.jobStore.get(key(pod.metadata.namespace, ref.name));
  }

  /** Pending -> Running (Ready). */
  runPod(name: string, namespace?: string): void {
    const pod = this.podByName(name, namespace);
    if (pod.status.phase !== 'Pending') throw new Error(`fake-kube: pod ${name} is ${pod.status.phase}, not Pending`);
    const t = this.now();
    pod.status = {
      ...pod.status,
      phase: 'Running',
      startTime: t,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: t },
        { type: 'Initialized', status: 'True', lastTransitionTime: t },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: t },
        { type: 'Ready', status: 'True', lastTransitionTime: t },
      ],
      containerStatuses: pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        ready: true,
        restartCount: 0,
        started: true,
        state: { running: { startedAt: t } },
      })),
    };
    pod.metadata.resourceVersion = this.nextRv();
    const job = this.ownerOf(pod);
    if (job) this.reconcile(job);
  }

  private terminate(pod: PodObject, phase: 'Succeeded' | 'Failed', exitCode: number, disruption: boolean): void {
    if (pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed') {
      throw new Error(`fake-kube: pod ${pod.metadata.name} already ${pod.status.phase}`);
    }
    const t = this.now();
    const conditions: Condition[] = pod.status.conditions.map((c) =>
      c.type === 'Ready' || c.type === 'ContainersReady'
        ? { ...c, status: 'False', reason: 'PodCompleted', lastTransitionTime: t }
        : c,
    );
    if (disruption)
      conditions.push({
        type: 'DisruptionTarget',
        status: 'True',
        reason: 'EvictionByEvictionAPI',
        message: 'Eviction API: evicting',
        lastTransitionTime: t,
      });
    pod.status = {
      ...pod.status,
      phase,
      conditions,
      containerStatuses: pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        ready: false,
        restartCount: 0,
        started: false,
        state: {
          terminated: {
            exitCode,
            reason: exitCode === 0 ? 'Completed' : 'Error',
            startedAt: pod.status.startTime ?? t,
            finishedAt: t,
          },
        },
      })),
    };
    pod.metadata.finalizers = [];
    pod.metadata.resourceVersion = this.nextRv();
    // Being deleted: once it has ended and the Job controller dropped its finalizer, the kubelet
    // removes it (its final delete).
    if (pod.metadata.deletionTimestamp !== undefined)
      this.podStore.delete(key(pod.metadata.namespace, pod.metadata.name));
    const job = this.ownerOf(pod);
    if (!job || this.jobFinished(job)) return;
    const st = this.state.get(job.metadata.uid);
    if (!st) return;
    const rawIndex = pod.metadata.labels?.['batch.kubernetes.io/job-completion-index'];
    const index = rawIndex === undefined ? undefined : Number(rawIndex);
    if (phase === 'Succeeded') {
      if (index !== undefined) st.succeededIndexes.add(index);
      else st.succeeded++;
    } else {
      const action = this.podFailureAction(job, pod, exitCode);
      if (action === 'FailJob') {
        st.failed++;
        this.finish(job, 'Failed', 'PodFailurePolicy', `Container of pod ${pod.metadata.name} matched a FailJob rule`);
      } else if (action !== 'Ignore') {
        st.failed++;
        if (index !== undefined && job.spec.backoffLimitPerIndex != null) {
          const n = (st.indexFailures.get(index) ?? 0) + 1;
          st.indexFailures.set(index, n);
          if (action === 'FailIndex' || n > job.spec.backoffLimitPerIndex) st.failedIndexes.add(index);
        }
      }
      // 'Ignore': not counted anywhere; the index gets a replacement pod in reconcile().
    }
    this.reconcile(job);
  }

  private podFailureAction(job: JobObject, pod: PodObject, exitCode: number): string {
    for (const rule of job.spec.podFailurePolicy?.rules ?? []) {
      if (rule.onPodConditions) {
        const hit = rule.onPodConditions.some((pc) =>
          pod.status.conditions.some((c) => c.type === pc.type && c.status === (pc.status ?? 'True')),
        );
        if (hit) return rule.action;
      } else if (rule.onExitCodes) {
        const { operator, values } = rule.onExitCodes;
        const hit = operator === 'In' ? values.includes(exitCode) : exitCode !== 0 && !values.includes(exitCode);
        if (hit) return rule.action;
      }
    }
    return 'Count';
  }

  /**
   * A Pending pod's containers wait with `reason` (ImagePullBackOff, ErrImagePull,
   * CreateContainerConfigError, ...), as the kubelet reports a start it cannot get past.
   */
  setPodWaiting(name: string, reason: string, message: string, namespace?: string): void {
    const pod = this.podByName(name, namespace);
    if (pod.status.phase !== 'Pending') throw new Error(`fake-kube: pod ${name} is ${pod.status.phase}, not Pending`);
    const t = this.now();
    pod.status = {
      ...pod.status,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: t },
        { type: 'ContainersReady', status: 'False', reason: 'ContainersNotReady', lastTransitionTime: t },
      ],
      containerStatuses: pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        ready: false,
        restartCount: 0,
        started: false,
        state: { waiting: { reason, message } },
      })),
    };
    pod.metadata.resourceVersion = this.nextRv();
  }

  /** A Pending pod the scheduler cannot place (PodScheduled False, reason Unschedulable). */
  setPodUnschedulable(name: string, message: string, namespace?: string): void {
    const pod = this.podByName(name, namespace);
    if (pod.status.phase !== 'Pending') throw new Error(`fake-kube: pod ${name} is ${pod.status.phase}, not Pending`);
    pod.status = {
      ...pod.status,
      conditions: [
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastTransitionTime: this.now() },
      ],
    };
    pod.metadata.resourceVersion = this.nextRv();
  }

  /** Secrets (copies), optionally of one namespace, sorted by name. */
  secrets(namespace?: string): SecretObject[] {
    return [...this.secretStore.values()]
      .filter((x) => !namespace || x.metadata.namespace === namespace)
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
      .map((x) => clone(x));
  }

  /** Pending/Running -> Succeeded (exit 0). */
  succeedPod(name: string, namespace?: string): void {
    this.terminate(this.podByName(name, namespace), 'Succeeded', 0, false);
  }

  /** -> Failed. `disruption` adds the DisruptionTarget condition (eviction, preemption). */
  failPod(name: string, opts: { disruption?: boolean; exitCode?: number; namespace?: string } = {}): void {
    this.terminate(this.podByName(name, opts.namespace), 'Failed', opts.exitCode ?? 1, opts.disruption ?? false);
  }

  private activeOf(jobName?: string): PodObject[] {
    return [...this.podStore.values()].filter(
      (p) =>
        (p.status.phase === 'Pending' || p.status.phase === 'Running') &&
        (!jobName || p.metadata.labels?.['job-name'] === jobName),
    );
  }

  /** Runs every Pending pod (of one Job, or all). */
  startAll(jobName?: string): void {
    for (const p of this.activeOf(jobName))
      if (p.status.phase === 'Pending') this.runPod(p.metadata.name, p.metadata.namespace);
  }

  /** Succeeds every active pod (of one Job, or all) — one pass over the pods active now. */
  succeedAll(jobName?: string): void {
    for (const p of this.activeOf(jobName)) {
      if (
        this.podStore.get(key(p.metadata.namespace, p.metadata.name)) === p &&
        (p.status.phase === 'Pending' || p.status.phase === 'Running')
      ) {
        this.succeedPod(p.metadata.name, p.metadata.namespace);
      }
    }
  }

  /**
   * activeDeadlineSeconds passed (job_controller.go): the controller deletes the active pods,
   * which the kubelet stops (SIGTERM: exit 143, phase Failed; they stay listed with their
   * deletionTimestamp while they terminate) and counts them in `failed`; the Job gets
   * FailureTarget, then Failed, with reason DeadlineExceeded.
   */
  expireDeadline(jobName: string, namespace?: string): void {
    const job = this.findJob(jobName, namespace);
    if (!job) throw new Error(`fake-kube: no job ${jobName}`);
    if (this.jobFinished(job)) return;
    const st = this.state.get(job.metadata.uid);
    const t = this.now();
    for (const pod of this.activePods(job)) {
      pod.metadata.deletionTimestamp = t;
      pod.metadata.finalizers = [];
      pod.status = {
        ...pod.status,
        phase: 'Failed',
        conditions: pod.status.conditions.map((c) =>
          c.type === 'Ready' || c.type === 'ContainersReady'
            ? { ...c, status: 'False', reason: 'PodCompleted', lastTransitionTime: t }
            : c,
        ),
        containerStatuses: pod.spec.containers.map((c) => ({
          name: c.name,
          image: c.image,
          ready: false,
          restartCount: 0,
          started: false,
          state: {
            terminated: { exitCode: 143, reason: 'Error', startedAt: pod.status.startTime ?? t, finishedAt: t },
          },
        })),
      };
      pod.metadata.resourceVersion = this.nextRv();
      if (st) st.failed++;
    }
    this.finish(job, 'Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline');
    this.reconcile(job);
  }

  /** Deleted out of band (an operator's `kubectl delete job`, or the TTL controller). */
  deleteJobOutOfBand(jobName: string, namespace?: string): void {
    const job = this.findJob(jobName, namespace);
    if (!job) throw new Error(`fake-kube: no job ${jobName}`);
    this.removeJob(job, 'Background');
  }

  /** Stores a Job as if some other client had created it (validated like a POST). */
  seedJob(
    job: V1Job | JsonObject,
    namespace = optionalString(getPath(job, 'metadata.namespace')) ?? 'ci-agents',
  ): V1Job {
    try {
      this.createJob(namespace, asObject(JSON.parse(JSON.stringify(job))));
    } catch (e) {
      if (e instanceof HttpError) throw new Error(`fake-kube: seedJob: ${e.body.message}`);
      throw e;
    }
    const stored = this.job(optionalString(getPath(job, 'metadata.name')) ?? '', namespace);
    if (!stored) throw new Error('fake-kube: seedJob: the Job was not stored');
    return stored;
  }
}

export async function startFakeKube(options: FakeKubeOptions = {}): Promise<FakeKube> {
  return new FakeKube(options).start();
}
