/**
 * Generated webhook requests for the fuzz suite (fast-check arbitraries), each with what the
 * request is entitled to: `mayEnqueue` is true only when the request carries valid credentials
 * for the provider of its route over exactly the bytes the handler will read (a token provider:
 * a valid token). Everything else must never reach the queue.
 *
 * Kinds of input:
 *  - noise: random bytes or text, random headers, every route and method, base64 flags that lie;
 *  - mutated: real payloads (Buildkite and GitLab as documented, GitHub's own examples) with up
 *    to four mutations (a value replaced by a hostile JSON fragment: prototype-pollution keys,
 *    NUL and unicode, lone surrogates, numbers for strings, huge strings, deep nesting; a key
 *    deleted; a hostile key added), signed after the mutation or before it, with a wrong secret,
 *    a stale timestamp or not at all; header names in any case, duplicated with other values,
 *    provider event headers replaced, delivery ids hostile; honest or lying base64 flags.
 */
import fc from 'fast-check';
import type { WebhookEvent } from '../../functions/webhook/app.js';
import {
  BUILDKITE_SECRET,
  buildkiteJob,
  buildkitePayload,
  buildkiteSignatureHeader,
  GITHUB_SECRET,
  GITLAB_TOKEN,
  githubSignature,
  gitlabJob,
  workflowJobExamples,
} from '../support/webhook-fixtures.js';

export type FuzzProvider = 'buildkite' | 'github' | 'gitlab';

export interface FuzzInput {
  readonly label: string;
  readonly event: WebhookEvent;
  /** The request carries valid credentials for its route over the bytes the handler decodes. */
  readonly mayEnqueue: boolean;
}

type Json = unknown;

export const PROTOTYPE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'isPrototypeOf',
  'hasOwnProperty',
  'propertyIsEnumerable',
  '__defineGetter__',
  'toLocaleString',
] as const;

/** Over WEBHOOK_MAX_BODY_BYTES in the fuzz configuration (256 KiB): answered 413. */
const HUGE = 'x'.repeat(300_000);
/** Under it, and still a message SQS would refuse if it were carried whole. */
const LARGE = 'y'.repeat(200_000);
const deepArrays = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const deepObjects = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

/**
 * Any code point, lone surrogates included (fc.string's 'binary' unit builds a reverse mapping
 * of all 1.1 million code points for every string, which made generation five times slower).
 */
const anyCodePoint = fc
  .oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x1f }) },
    { weight: 2, arbitrary: fc.integer({ min: 0x7f, max: 0xffff }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }) },
  )
  .map((cp) => String.fromCodePoint(cp));

/** JSON fragments (valid or not) put in place of a payload value. */
const hostileFragment: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...PROTOTYPE_KEYS).map((k) => JSON.stringify(k)) },
  {
    weight: 9,
    arbitrary: fc.string({ unit: anyCodePoint, maxLength: 40 }).map((s) => JSON.stringify(s)),
  },
  {
    weight: 6,
    arbitrary: fc
      .constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udc00y', '\uffff', '\ufffe', '🚀', 'ü', '\u202e', ' ')
      .map((s) => JSON.stringify(s)),
  },
  { weight: 6, arbitrary: fc.oneof(fc.integer(), fc.double()).map((n) => JSON.stringify(n)) },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '1e400',
      '-0',
      '-1',
      '1.5',
      '9007199254740993',
      '12345',
      '"12345"',
      '"0190a4b8-6f2c-4b7e-9a53-1c1e2f3a4b5c"',
      '0x10',
      'NaN',
      'undefined',
    ),
  },
  {
    weight: 9,
    arbitrary: fc.constantFrom(
      'null',
      'true',
      'false',
      '{}',
      '[]',
      '""',
      '"queued"',
      '"in_progress"',
      '"completed"',
      '"waiting"',
      '"cancelled"',
      '"skipped"',
      '"pending"',
      '"running"',
      '"success"',
      '"failed"',
      '"canceled"',
      '"created"',
      '"job.scheduled"',
      '"job.started"',
      '"job.finished"',
      '"ping"',
      '"script"',
      '"waiter"',
      '"build"',
      '["queue=k8s"]',
      '["queue=__proto__"]',
      '["queue="]',
      '["ubuntu-latest"]',
      '["self-hosted","k8s"]',
      '["__proto__","constructor"]',
      '[1,2]',
      '"k8s"',
      '"2026-11-23 10:00:00 UTC"',
      '"2026-11-23T10:00:00.123+02:00"',
      '"2026-02-30T00:00:00Z"',
      '"0000-00-00 00:00:00 UTC"',
      '"275760-09-13T00:00:00Z"',
      '"2026-11-23T10:00:00+99:99"',
      '{"__proto__":{"polluted":true}}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      '[{"__proto__":{"polluted":true}}]',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      JSON.stringify(HUGE),
      JSON.stringify(LARGE),
      JSON.stringify(`\u0000${LARGE.slice(0, 100_000)}\uffff`),
      deepArrays(100_000),
      deepObjects(20_000),
      deepArrays(5_000),
    ),
  },
);

const hostileKey = fc.oneof(
  fc.constantFrom(...PROTOTYPE_KEYS),
  fc.constantFrom('event', 'action', 'build_status', 'object_kind', 'tags', 'labels', 'id', 'job', 'workflow_job'),
  fc.string({ maxLength: 10 }),
);

const hostileHeaderValue = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: anyCodePoint, maxLength: 20 }),
  fc.constantFrom(...PROTOTYPE_KEYS),
  fc.constantFrom('\u0000', 'a\u0000b', '\ud800', '\uffff', '🚀', 'x'.repeat(10_000), ''),
);

interface Base {
  readonly provider: FuzzProvider;
  readonly payload: Json;
}

const BASES: readonly Base[] = [
  { provider: 'buildkite', payload: buildkitePayload('job.scheduled') },
  {
    provider: 'buildkite',
    payload: buildkitePayload('job.scheduled', buildkiteJob({ agent_query_rules: ['queue=k8s'] })),
  },
  {
    provider: 'buildkite',
    payload: buildkitePayload('job.started', buildkiteJob({ started_at: '2026-11-23 10:00:09 UTC' })),
  },
  {
    provider: 'buildkite',
    payload: buildkitePayload(
      'job.finished',
      buildkiteJob({ started_at: '2026-11-23 10:00:09 UTC', finished_at: '2026-11-23 10:05:00 UTC' }),
    ),
  },
  {
    provider: 'buildkite',
    payload: buildkitePayload('job.finished', buildkiteJob({ finished_at: '2026-11-23 10:05:00 UTC' })),
  },
  { provider: 'buildkite', payload: { event: 'ping' } },
  ...workflowJobExamples().map((payload): Base => ({ provider: 'github', payload })),
  ...['pending', 'running', 'success', 'failed', 'canceled', 'skipped', 'created'].map(
    (status): Base => ({
      provider: 'gitlab',
      payload: gitlabJob({
        build_status: status,
        ...(status === 'pending' ? {} : { build_started_at: '2026-11-23 10:00:05 UTC' }),
        ...(status === 'pending' || status === 'running' ? {} : { build_finished_at: '2026-11-23 10:02:00 UTC' }),
      }),
    }),
  ),
  { provider: 'gitlab', payload: gitlabJob({ tags: ['k8s'] }) },
];

/** Every path to a value of a JSON value (the root included). */
function paths(value: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      paths(v, [...prefix, i], out);
    });
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  }
  return out;
}
const BASE_PATHS = BASES.map((b) => paths(b.payload));
const BASE_TEXTS = BASES.map((b) => JSON.stringify(b.payload));

function define(target: Record<string | number, unknown>, key: string | number, value: unknown): void {
  // defineProperty, not assignment: a key `__proto__` becomes an own property, as JSON.parse makes it.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

type Mutation =
  | { readonly op: 'replace'; readonly at: number; readonly fragment: string }
  | { readonly op: 'delete'; readonly at: number }
  | { readonly op: 'add'; readonly at: number; readonly key: string; readonly fragment: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), fragment: hostileFragment }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('add' as const), at: fc.nat(), key: hostileKey, fragment: hostileFragment }),
  },
);

/** The payload's JSON text after the mutations (fragments are spliced in as raw text). */
function mutate(baseIndex: number, mutations: readonly Mutation[]): string {
  const all = BASE_PATHS[baseIndex] ?? [[]];
  let root: Json = JSON.parse(BASE_TEXTS[baseIndex] ?? 'null');
  const fragments: string[] = [];
  const marker = (i: number) => `@@fuzz-fragment-${i}@@`;
  for (const m of mutations) {
    const path = all[m.at % all.length] ?? [];
    const parentPath = path.slice(0, -1);
    const last = path[path.length - 1];
    let parent: Json = root;
    for (const step of parentPath) {
      if (parent === null || typeof parent !== 'object') break;
      parent = (parent as Record<string | number, unknown>)[step];
    }
    const container =
      parent !== null && typeof parent === 'object' ? (parent as Record<string | number, unknown>) : undefined;
    if (m.op === 'replace') {
      fragments.push(m.fragment);
      const value = marker(fragments.length - 1);
      if (last === undefined) root = value;
      else if (container !== undefined) define(container, last, value);
    } else if (m.op === 'delete') {
      if (last === undefined || container === undefined) continue;
      if (Array.isArray(container) && typeof last === 'number') container.splice(last, 1);
      else delete container[last];
    } else {
      const target =
        last === undefined ? root : container === undefined ? undefined : (container[last] as Json | undefined);
      if (target === null || typeof target !== 'object' || Array.isArray(target)) continue;
      fragments.push(m.fragment);
      define(target as Record<string, unknown>, m.key, marker(fragments.length - 1));
    }
  }
  const text = JSON.stringify(root) ?? 'null';
  return fragments.length === 0
    ? text
    : text.replace(/"@@fuzz-fragment-(\d+)@@"/g, (_, i: string) => fragments[Number(i)] ?? 'null');
}

/** The bytes the handler will read from a (body, isBase64Encoded) pair. */
export function decodedBody(body: string | undefined, base64: boolean | undefined): Buffer {
  return Buffer.from(body ?? '', base64 ? 'base64' : 'utf8');
}

type AuthMode = 'valid' | 'before-mutation' | 'wrong-secret' | 'stale' | 'garbage' | 'none';
type BodyMode = 'plain' | 'base64' | 'lie-base64' | 'lie-plain';

const AUTH_HEADERS = new Set(['x-hub-signature-256', 'x-buildkite-signature', 'x-buildkite-token', 'x-gitlab-token']);

const ROUTE_PREFIXES = ['/webhooks/', '/prod/webhooks/', '/v1/webhooks/'] as const;

/** `k=v,k=v` pairs none of which is `timestamp` or `signature` (Buildkite's signature header). */
function onlyOtherPairs(value: string): boolean {
  return value.split(',').every((part) => {
    const eq = part.indexOf('=');
    return eq > 0 && !['timestamp', 'signature'].includes(part.slice(0, eq).trim());
  });
}

function randomCase(name: string, mask: number): string {
  return [...name].map((c, i) => ((mask >> (i % 30)) & 1 ? c.toUpperCase() : c)).join('');
}

const mutatedRequest: fc.Arbitrary<FuzzInput> = fc
  .record({
    base: fc.nat(BASES.length - 1),
    mutations: fc.oneof(fc.constant([]), fc.array(mutation, { minLength: 1, maxLength: 3 })),
    auth: fc.oneof(
      { weight: 6, arbitrary: fc.constant<AuthMode>('valid') },
      {
        weight: 2,
        arbitrary: fc.constantFrom<AuthMode>('before-mutation', 'wrong-secret', 'stale', 'garbage', 'none'),
      },
    ),
    buildkiteToken: fc.boolean(),
    bodyMode: fc.oneof(
      { weight: 6, arbitrary: fc.constant<BodyMode>('plain') },
      { weight: 2, arbitrary: fc.constant<BodyMode>('base64') },
      { weight: 1, arbitrary: fc.constantFrom<BodyMode>('lie-base64', 'lie-plain') },
    ),
    caseMask: fc.oneof(fc.constant(0), fc.nat()),
    eventHeader: fc.oneof(
      { weight: 6, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constant(null) },
      { weight: 3, arbitrary: fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS), hostileHeaderValue) },
    ),
    delivery: fc.option(hostileHeaderValue),
    duplicate: fc.oneof(
      { weight: 4, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.record({ header: fc.nat(), value: hostileHeaderValue, mask: fc.nat() }) },
    ),
    extra: fc.dictionary(
      fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS), fc.string({ maxLength: 12 })),
      hostileHeaderValue,
      {
        maxKeys: 2,
      },
    ),
    route: fc.oneof(
      { weight: 12, arbitrary: fc.constantFrom(...ROUTE_PREFIXES).map((p) => ({ prefix: p, suffix: '' })) },
      { weight: 1, arbitrary: fc.constantFrom('/', '//', '/x').map((suffix) => ({ prefix: '/webhooks/', suffix })) },
      { weight: 1, arbitrary: fc.constant({ prefix: '/WEBHOOKS/', suffix: '' }) },
    ),
    otherProvider: fc.oneof(
      { weight: 12, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.constantFrom<FuzzProvider>('buildkite', 'github', 'gitlab') },
    ),
    method: fc.oneof(
      { weight: 12, arbitrary: fc.constant('POST') },
      { weight: 1, arbitrary: fc.constantFrom('post', 'GET', 'PUT', '', 'DELETE') },
    ),
    nowSkew: fc.integer({ min: -200, max: 200 }),
  })
  .map((r): FuzzInput => {
    const base = BASES[r.base] as Base;
    const provider = base.provider;
    const original = BASE_TEXTS[r.base] ?? '';
    const text = r.mutations.length === 0 ? original : mutate(r.base, r.mutations);
    const signedText = r.auth === 'before-mutation' ? original : text;
    const now = Math.floor(Date.now() / 1000) + r.nowSkew;
    const headers: [string, string][] = [['content-type', 'application/json']];
    const useToken = provider === 'gitlab' || (provider === 'buildkite' && r.buildkiteToken);
    const secret =
      r.auth === 'wrong-secret'
        ? 'not-the-secret'
        : provider === 'buildkite'
          ? BUILDKITE_SECRET
          : provider === 'github'
            ? GITHUB_SECRET
            : GITLAB_TOKEN;
    if (r.auth !== 'none') {
      if (provider === 'github') {
        headers.push([
          'x-hub-signature-256',
          r.auth === 'garbage' ? `sha256=${'0'.repeat(64)}` : githubSignature(secret, signedText),
        ]);
      } else if (useToken) {
        const token = r.auth === 'garbage' ? 'garbage-token' : r.auth === 'stale' ? secret.slice(1) : secret;
        headers.push([provider === 'gitlab' ? 'x-gitlab-token' : 'x-buildkite-token', token]);
      } else {
        const at = r.auth === 'stale' ? now - 3_600 : now;
        headers.push([
          'x-buildkite-signature',
          r.auth === 'garbage'
            ? `timestamp=${at},signature=${'a'.repeat(64)}`
            : buildkiteSignatureHeader(secret, signedText, at),
        ]);
      }
    }
    const eventName =
      provider === 'buildkite' ? 'x-buildkite-event' : provider === 'github' ? 'x-github-event' : 'x-gitlab-event';
    const eventValue =
      provider === 'buildkite'
        ? String((base.payload as { event?: unknown }).event)
        : provider === 'github'
          ? 'workflow_job'
          : 'Job Hook';
    if (r.eventHeader !== null) headers.push([eventName, r.eventHeader ?? eventValue]);
    if (r.delivery !== null) {
      headers.push([provider === 'gitlab' ? 'x-gitlab-event-uuid' : 'x-github-delivery', r.delivery]);
    }
    const named = headers.map(([n, v]): [string, string] => [randomCase(n, r.caseMask), v]);
    const object: Record<string, string> = Object.create(null);
    for (const [n, v] of named) object[n] = v;
    // A second header whose name differs only in case: the handler joins the two values, which
    // spoils a token or a GitHub signature; a Buildkite signature header is a list of key=value
    // pairs, so one with other pairs appended still carries the same timestamp and signature.
    let authDuplicated = false;
    if (r.duplicate !== null) {
      const [n] = named[r.duplicate.header % named.length] ?? ['content-type'];
      const other = randomCase(n.toLowerCase(), r.duplicate.mask ^ 1);
      if (other !== n) {
        object[other] = r.duplicate.value;
        authDuplicated =
          AUTH_HEADERS.has(n.toLowerCase()) &&
          !(n.toLowerCase() === 'x-buildkite-signature' && onlyOtherPairs(r.duplicate.value));
      }
    }
    const present = new Set(named.map(([k]) => k.toLowerCase()));
    for (const [n, v] of Object.entries(r.extra)) {
      if (present.has(n.toLowerCase())) continue;
      Object.defineProperty(object, n, { value: v, enumerable: true, writable: true, configurable: true });
    }
    const bytes = Buffer.from(text, 'utf8');
    const body = r.bodyMode === 'base64' || r.bodyMode === 'lie-plain' ? bytes.toString('base64') : text;
    const isBase64Encoded = r.bodyMode === 'base64' || r.bodyMode === 'lie-base64';
    const routeProvider = r.otherProvider ?? provider;
    const path = `${r.route.prefix}${routeProvider}${r.route.suffix === '/' ? '/' : r.route.suffix}`;
    const delivered = decodedBody(body, isBase64Encoded);
    const credentialsValid =
      r.auth === 'valid' ||
      (r.auth === 'before-mutation' && (useToken || text === original)) ||
      (r.auth === 'stale' && provider === 'github'); // GitHub signatures carry no time
    const mayEnqueue =
      credentialsValid &&
      !authDuplicated &&
      routeProvider === provider &&
      (useToken || delivered.equals(Buffer.from(signedText, 'utf8')));
    return {
      label: `mutated ${provider} #${r.base} auth=${r.auth} body=${r.bodyMode} mutations=${r.mutations.length}`,
      event: { rawPath: path, headers: object, body, isBase64Encoded, requestContext: { http: { method: r.method } } },
      mayEnqueue,
    };
  });

const anyHeaderName = fc.oneof(
  fc.constantFrom(
    'x-buildkite-event',
    'X-Buildkite-Signature',
    'x-buildkite-token',
    'X-GitHub-Event',
    'x-hub-signature-256',
    'x-github-delivery',
    'X-Gitlab-Event',
    'x-gitlab-token',
    'x-gitlab-event-uuid',
    'Content-Type',
  ),
  fc.constantFrom(...PROTOTYPE_KEYS),
  fc.string({ maxLength: 12 }),
);

/** Requests without valid credentials: random everything. */
const noiseRequest: fc.Arbitrary<FuzzInput> = fc
  .record({
    path: fc.oneof(
      fc.constantFrom(
        '/webhooks/buildkite',
        '/webhooks/github',
        '/webhooks/gitlab',
        '/prod/webhooks/gitlab/',
        '/webhooks/',
        '/webhooks/__proto__',
        '/webhooks/constructor',
        '/webhooks/toString',
        '/webhooks/GitHub',
        '',
        '/',
      ),
      fc.string({ maxLength: 30 }).map((s) => `/${s}`),
      fc.string({ unit: anyCodePoint, maxLength: 20 }),
    ),
    method: fc.oneof(
      fc.constantFrom('POST', 'post', 'GET', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', '', '__proto__'),
      fc.string({ maxLength: 8 }),
    ),
    headers: fc.option(fc.dictionary(anyHeaderName, hostileHeaderValue, { maxKeys: 6 }), { freq: 20 }),
    body: fc.option(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.string({ unit: anyCodePoint, maxLength: 100 }),
        fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('latin1')),
        fc.json({ maxDepth: 4 }),
        fc.constantFrom(deepArrays(50_000), `{"event":${JSON.stringify('job.scheduled')}}`, '{"__proto__":{"a":1}}'),
      ),
      { freq: 20 },
    ),
    base64: fc.option(fc.boolean(), { freq: 10 }),
    encodeAsBase64: fc.boolean(),
  })
  .map(
    (r): FuzzInput => ({
      label: 'noise',
      event: {
        rawPath: r.path,
        ...(r.headers === null ? {} : { headers: r.headers }),
        ...(r.body === null
          ? {}
          : { body: r.encodeAsBase64 ? Buffer.from(r.body, 'utf8').toString('base64') : r.body }),
        ...(r.base64 === null ? {} : { isBase64Encoded: r.base64 }),
        requestContext: { http: { method: r.method } },
      },
      mayEnqueue: false,
    }),
  );

/** Mostly mutated real payloads, some noise. */
export const webhookInput: fc.Arbitrary<FuzzInput> = fc.oneof(
  { weight: 3, arbitrary: mutatedRequest },
  { weight: 1, arbitrary: noiseRequest },
);
