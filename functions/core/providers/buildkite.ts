/**
 * Buildkite pipeline webhooks (job.* events). Authenticated by either
 *  - `X-Buildkite-Signature: timestamp=T,signature=S`, S = hex(HMAC-SHA256(secret, `${T}.${rawBody}`)),
 *    with T within the replay window of now, or
 *  - `X-Buildkite-Token: <secret>`, compared in constant time.
 * Pure: crypto only.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { JobEventKind } from '../job-event.js';
import { routeBuildkite } from '../routing.js';
import type { ProviderDescriptor } from './descriptor.js';
import { agentQueue, buildkiteOutOfScope } from './scope.js';
import {
  BadRequestError,
  constantTimeEqual,
  header,
  idField,
  isObject,
  jobEventResult,
  objectField,
  optionalString,
  type ParseContext,
  type ProviderModule,
  type ProviderResult,
  parseJsonObject,
  type RawRequest,
  routingOf,
  timestampField,
  type VerifyOptions,
} from './types.js';

// A Map, not an object literal: an event named `constructor` or `__proto__` must find nothing.
const KINDS: ReadonlyMap<string, JobEventKind> = new Map([
  ['job.scheduled', 'scheduled'],
  ['job.started', 'started'],
  ['job.finished', 'finished'],
]);

/** Parses `timestamp=T,signature=S` (order-insensitive); undefined when malformed. */
export function parseSignatureHeader(value: string): { timestamp: string; signature: string } | undefined {
  const parts = new Map<string, string>();
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    parts.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const timestamp = parts.get('timestamp');
  const signature = parts.get('signature');
  if (!timestamp || !/^\d{1,12}$/.test(timestamp) || !signature || !/^[0-9a-fA-F]{64}$/.test(signature)) {
    return undefined;
  }
  return { timestamp, signature: signature.toLowerCase() };
}

/** hex(HMAC-SHA256(secret, `${timestamp}.${body}`)) over the raw body bytes. */
export function buildkiteSignature(secret: string, timestamp: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

function verifySignature(
  request: RawRequest,
  value: string,
  secrets: readonly string[],
  options: VerifyOptions,
): boolean {
  const parsed = parseSignatureHeader(value);
  if (!parsed) return false;
  const skewSeconds = Math.abs(options.now / 1000 - Number(parsed.timestamp));
  if (!(skewSeconds <= options.replayWindowSeconds)) return false;
  const given = Buffer.from(parsed.signature, 'hex');
  let ok = false;
  for (const secret of secrets) {
    const expected = Buffer.from(buildkiteSignature(secret, parsed.timestamp, request.body), 'hex');
    // Both are 32-byte digests; check every secret so timing does not reveal which matched.
    if (expected.length === given.length && timingSafeEqual(expected, given)) ok = true;
  }
  return ok;
}

export const buildkite: ProviderModule = {
  name: 'buildkite',

  secretsFrom(value) {
    return value === '' ? [] : [value];
  },

  async verify(request, secrets, options) {
    if (secrets.length === 0) return false;
    const signature = header(request, 'x-buildkite-signature');
    if (signature !== undefined) return verifySignature(request, signature, secrets, options);
    const token = header(request, 'x-buildkite-token');
    if (token === undefined) return false;
    let ok = false;
    for (const secret of secrets) if (constantTimeEqual(token, secret)) ok = true;
    return ok;
  },

  parse(request: RawRequest, context: ParseContext): ProviderResult {
    const body = parseJsonObject(request.body.toString('utf8'));
    const bodyEvent = typeof body.event === 'string' ? body.event : undefined;
    const name = header(request, 'x-buildkite-event') ?? bodyEvent;
    if (name === undefined) throw new BadRequestError('X-Buildkite-Event header is missing');
    if (name === 'ping') return { kind: 'pong' };
    const kind = KINDS.get(name);
    if (kind === undefined) return { kind: 'ignored', reason: `event ${name} is not acted on` };

    const job = objectField(body, 'job', 'job');
    const jobId = idField(job, 'id', 'job.id');
    const type = job.type;
    if (typeof type !== 'string') throw new BadRequestError('job.type is missing or not a string');
    if (type !== 'script') return { kind: 'ignored', reason: `job type ${type} needs no agent` };

    const rules = job.agent_query_rules ?? [];
    if (!Array.isArray(rules) || rules.some((r) => typeof r !== 'string')) {
      throw new BadRequestError('job.agent_query_rules must be an array of strings');
    }
    const build = isObject(body.build) ? body.build : {};
    const pipeline = isObject(body.pipeline) ? body.pipeline : {};
    const outOfScope = buildkiteOutOfScope(
      optionalString(job.cluster_id) ?? optionalString(pipeline.cluster_id),
      context.scope,
    );
    if (outOfScope !== undefined) return { kind: 'ignored', reason: outOfScope };
    const routing = routingOf(context);
    // The agent that took the job (job.started, job.finished): count the job in its queue; a
    // job's rules may be met by the agents of several queues (overlapping tags).
    const agent = isObject(job.agent) ? job.agent : undefined;
    const metaData =
      agent && Array.isArray(agent.meta_data) && agent.meta_data.every((t) => typeof t === 'string')
        ? (agent.meta_data as string[])
        : undefined;
    const ran = agent
      ? agentQueue(buildkiteProvider, { name: optionalString(agent.name), tags: metaData }, routing)
      : undefined;
    let queue: string;
    if (ran !== undefined) {
      queue = ran;
    } else {
      // Every rule must be met by the agents a queue starts (README, Matching jobs to queues).
      const routed = routeBuildkite(rules as string[], routing);
      if ('unmet' in routed) return { kind: 'ignored', reason: routed.unmet };
      queue = routed.queue;
    }

    const scheduledAt =
      timestampField(job.scheduled_at, 'job.scheduled_at') ??
      timestampField(job.runnable_at, 'job.runnable_at') ??
      timestampField(job.created_at, 'job.created_at');
    const startedAt = timestampField(job.started_at, 'job.started_at');
    const finishedAt = timestampField(job.finished_at, 'job.finished_at');

    // A job that finished without ever starting (canceled, expired, skipped, timed out while
    // waiting for an agent, ...) never used an agent: it is cancelled, not finished.
    const effective: JobEventKind = kind === 'finished' && startedAt === undefined ? 'cancelled' : kind;

    const trace = {
      pipeline: optionalString(pipeline.slug) ?? optionalString(pipeline.name),
      repository: optionalString(pipeline.repository),
      build: optionalString(build.number),
      url: optionalString(job.web_url) ?? optionalString(build.web_url),
    };
    return jobEventResult({
      provider: 'buildkite',
      jobId,
      queue,
      kind: effective,
      times: { scheduledAt, startedAt, finishedAt },
      context,
      trace,
    });
  },
};

/** The Buildkite descriptor (registry.ts). */
export const buildkiteProvider = {
  name: 'buildkite',
  title: 'Buildkite',
  webhook: buildkite,
  route: routeBuildkite,
  agentTags: 'agentTags',
  overrideKeys: ['agentTags'],
  template: 'buildkite',
  secretVariable: 'BUILDKITE_WEBHOOK_SECRET',
} as const satisfies ProviderDescriptor<'buildkite'>;
