/**
 * What every provider module shares: the raw request it sees, the result it returns, the two
 * ways a request is rejected, and small pure helpers (header lookup, JSON body, timestamps,
 * queue matching, constant-time comparison). Pure: crypto only, no I/O.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  boundDeliveryId,
  boundTrace,
  eventId,
  JOB_ID_PATTERN,
  type JobEventKind,
  type Provider,
  type QueuedJobEvent,
} from '../job-event.js';
import { defaultRouting, type Routing } from '../routing.js';
import type { JobScope } from './scope.js';

/** A request as the provider signed it: raw bytes and lower-cased header names. */
export interface RawRequest {
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer;
}

export interface VerifyOptions {
  /** Epoch milliseconds; the Buildkite replay window is measured from here. */
  readonly now: number;
  readonly replayWindowSeconds: number;
}

export interface ParseContext {
  /** Queue names this deployment serves (QUEUES). */
  readonly queues: readonly string[];
  /** What each queue's agents carry; absent: every queue at its defaults, for any provider. */
  readonly routing?: Routing;
  /** Which jobs are ours (organisations, repositories, projects, clusters); absent: all. */
  readonly scope?: JobScope;
  readonly receivedAt: Date;
}

export function routingOf(context: ParseContext): Routing {
  return context.routing ?? defaultRouting(context.queues);
}

export type ProviderResult =
  | { readonly kind: 'event'; readonly event: QueuedJobEvent }
  | { readonly kind: 'ignored'; readonly reason: string }
  | { readonly kind: 'pong' };

export interface ProviderModule {
  readonly name: Provider;
  /** Splits the configured secret value into the candidates to try (GitHub: comma-separated). */
  secretsFrom(value: string): string[];
  /** True when the request is authentic for one of the secrets. Never throws on bad input. */
  verify(request: RawRequest, secrets: readonly string[], options: VerifyOptions): Promise<boolean>;
  /** Turns an authenticated request into a result; throws BadRequestError naming what is wrong. */
  parse(request: RawRequest, context: ParseContext): ProviderResult;
}

/** The body or headers are not what the provider documents: answered 400 with this message. */
export class BadRequestError extends Error {
  readonly status = 400;
  constructor(message: string) {
    super(message);
    this.name = 'BadRequestError';
  }
}

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a JSON object body; anything else is a 400. */
export function parseJsonObject(text: string, what = 'body'): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadRequestError(`${what} is not valid JSON`);
  }
  if (!isObject(parsed)) throw new BadRequestError(`${what} must be a JSON object`);
  return parsed;
}

export function objectField(parent: JsonObject, key: string, path: string): JsonObject {
  const value = parent[key];
  if (!isObject(value)) throw new BadRequestError(`${path} is missing or not an object`);
  return value;
}

/** A job id: a non-empty string or a non-negative safe integer (GitHub and GitLab use numbers). */
export function idField(parent: JsonObject, key: string, path: string): string {
  const value = parent[key];
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  if (typeof value === 'string' && JOB_ID_PATTERN.test(value)) return value;
  throw new BadRequestError(`${path} is missing or not a valid id`);
}

export function optionalString(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

// `2018-11-01 15:03:16 UTC` (Buildkite, GitLab) and `2021-04-28 21:50:00 +0200` (GitLab).
const SPACED = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) ?(UTC|Z|[+-]\d{2}:?\d{2})$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/;

/**
 * A provider timestamp as ISO-8601 (UTC), or undefined when absent (null/missing). A value that
 * is present but unreadable is a 400 naming the field.
 */
export function timestampField(value: unknown, path: string): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new BadRequestError(`${path} must be a timestamp string`);
  let text = value.trim();
  const spaced = SPACED.exec(text);
  if (spaced) {
    const [, date, time, offset = 'Z'] = spaced;
    const zone = offset === 'UTC' ? 'Z' : offset;
    text = `${date}T${time}${zone}`;
  } else if (!ISO.test(text)) {
    throw new BadRequestError(
      `${path} is not a timestamp (expected ISO-8601 or "YYYY-MM-DD hh:mm:ss UTC"): ${JSON.stringify(value.slice(0, 40))}`,
    );
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new BadRequestError(`${path} is not a valid date: ${JSON.stringify(value.slice(0, 40))}`);
  return new Date(ms).toISOString();
}

/**
 * The served queue (as configured) that one of the candidate names equals, case-insensitively;
 * served queues are tried in configuration order, so QUEUES also sets the precedence when a job
 * names several served queues.
 */
export function matchServedQueue(candidates: readonly string[], queues: readonly string[]): string | undefined {
  const wanted = new Set(candidates.map((c) => c.toLowerCase()));
  return queues.find((q) => wanted.has(q.toLowerCase()));
}

/** Constant-time string comparison (SHA-256 digests, so lengths are always equal). */
export function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/** Header lookup on lower-cased names; an empty value counts as missing. */
export function header(request: RawRequest, name: string): string | undefined {
  const value = request.headers[name.toLowerCase()];
  return value === undefined || value === '' ? undefined : value;
}

/** The moments a provider reports for a job (ISO-8601), when it reports them. */
export interface JobTimes {
  readonly scheduledAt?: string | undefined;
  readonly startedAt?: string | undefined;
  readonly finishedAt?: string | undefined;
}

/**
 * The accepted-event result every provider ends with: the event's stable id, its time (the
 * provider's own time for that transition, else when we received it), the delivery id and the
 * trace without empty fields, both cut to their bounds (EVENT_BOUNDS: an overlong trace never
 * stops an event).
 */
export function jobEventResult(fields: {
  readonly provider: Provider;
  readonly jobId: string;
  /** Undefined only for a GitLab job whose tags the scaler looks up (gitlabProjectId). */
  readonly queue: string | undefined;
  readonly gitlabProjectId?: string;
  readonly kind: JobEventKind;
  readonly times: JobTimes;
  readonly context: ParseContext;
  readonly deliveryId?: string | undefined;
  readonly trace: Record<string, string | undefined>;
}): ProviderResult {
  const { provider, jobId, queue, kind, times, context, deliveryId, gitlabProjectId } = fields;
  const at = kind === 'scheduled' ? times.scheduledAt : kind === 'started' ? times.startedAt : times.finishedAt;
  const delivery = boundDeliveryId(deliveryId);
  return {
    kind: 'event',
    event: {
      id: eventId(provider, jobId, kind),
      provider,
      jobId,
      ...(queue === undefined ? {} : { queue }),
      ...(gitlabProjectId === undefined ? {} : { gitlabProjectId }),
      kind,
      occurredAt: at ?? context.receivedAt.toISOString(),
      receivedAt: context.receivedAt.toISOString(),
      ...(delivery === undefined ? {} : { deliveryId: delivery }),
      trace: boundTrace(fields.trace),
    },
  };
}
