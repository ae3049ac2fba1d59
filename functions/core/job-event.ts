/**
 * The normalised CI job event: what every provider's webhook becomes, what travels through SQS,
 * and what the scaler applies to the ledger. Pure: no I/O.
 */
import { createHash } from 'node:crypto';
// zod/mini: the same validation, tree-shaken to what this schema uses (the webhook stays small).
import * as z from 'zod/mini';

export const PROVIDERS = ['buildkite', 'github', 'gitlab'] as const;
export type Provider = (typeof PROVIDERS)[number];

export const JOB_EVENT_KINDS = ['scheduled', 'started', 'finished', 'cancelled'] as const;
export type JobEventKind = (typeof JOB_EVENT_KINDS)[number];

/**
 * Bounds of every field an event carries, so that a message stays far below SQS's 256 KiB and a
 * ledger item far below DynamoDB's 400 KB whatever a (signed) request contains. Identifying
 * fields are validated where they are read (a request with an absurd job id is a 400); optional
 * ones (delivery id, trace) are cut to their bound, never a reason to refuse an event.
 */
export const EVENT_BOUNDS = {
  /** A provider's job id: the characters of JOB_ID_PATTERN. */
  jobIdChars: 128,
  deliveryIdChars: 128,
  /** Each trace field (pipeline, repository, build, run, url); longer ones end in `…`. */
  traceChars: 512,
  /** The whole message as sent to SQS (ASCII JSON, see eventMessageBody). */
  messageBytes: 32 * 1024,
} as const;

/** Job ids as providers send them (UUIDs, numbers): letters, digits and `._:-`. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** A queue name, as QUEUES accepts it (functions/shared/config.ts): labels and tags name one. */
export const QUEUE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const EVENT_ID_PATTERN = /^[0-9a-f]{32}$/;

/** Control characters (NUL included) and unpaired UTF-16 surrogates: never stored. */
const UNSAFE_CHARS = /[\p{Cc}\p{Cs}]/u;
const UNSAFE_CHARS_ALL = /[\p{Cc}\p{Cs}]/gu;

/**
 * A text as stored: control characters dropped, unpaired surrogates replaced by U+FFFD, and cut
 * to `max` UTF-16 code units (ending in `…`, never splitting a surrogate pair).
 */
export function boundedText(value: string, max: number): string {
  const text = UNSAFE_CHARS.test(value)
    ? value.replace(UNSAFE_CHARS_ALL, (c) => (c.length === 1 && c >= '\ud800' && c <= '\udfff' ? '\ufffd' : ''))
    : value;
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // a high surrogate whose pair would be cut off
  return `${text.slice(0, end)}…`;
}

const storedText = (max: number) =>
  z.string().check(
    z.minLength(1),
    z.maxLength(max),
    z.refine((s) => !UNSAFE_CHARS.test(s), 'contains control characters or unpaired surrogates'),
  );

const TRACE_FIELDS = ['pipeline', 'repository', 'build', 'run', 'url'] as const;

export const JobEventSchema = /* @__PURE__ */ z
  .strictObject({
    /** Stable identity of this event: the same for every redelivery of it (see eventId()). */
    id: z.string().check(z.regex(EVENT_ID_PATTERN)),
    provider: z.enum(PROVIDERS),
    /** The provider's job id (Buildkite job UUID, GitHub workflow_job id, GitLab build id). */
    jobId: z.string().check(z.regex(JOB_ID_PATTERN)),
    /**
     * The served queue whose agents could take the job. Absent only on a GitLab event: the Job
     * Hook carries no job tags, so the scaler looks them up (see gitlabProjectId) and sets it.
     */
    queue: z.optional(z.string().check(z.regex(QUEUE_NAME_PATTERN))),
    /** GitLab: the project of the job, for `GET /projects/:id/jobs/:job_id` (its tag_list). */
    gitlabProjectId: z.optional(z.string().check(z.regex(JOB_ID_PATTERN))),
    kind: z.enum(JOB_EVENT_KINDS),
    /** When the provider says it happened (ISO-8601, UTC). */
    occurredAt: z.iso.datetime(),
    /** When our webhook received it (ISO-8601, UTC). */
    receivedAt: z.iso.datetime(),
    /** The provider's delivery id where it sends one (X-GitHub-Delivery, X-Gitlab-Event-UUID, ...). */
    deliveryId: z.optional(storedText(EVENT_BOUNDS.deliveryIdChars)),
    /** What an operator needs to find the job: pipeline/repository, build/run, a link. */
    trace: z._default(
      z.object({
        pipeline: z.optional(storedText(EVENT_BOUNDS.traceChars)),
        repository: z.optional(storedText(EVENT_BOUNDS.traceChars)),
        build: z.optional(storedText(EVENT_BOUNDS.traceChars)),
        run: z.optional(storedText(EVENT_BOUNDS.traceChars)),
        url: z.optional(storedText(EVENT_BOUNDS.traceChars)),
      }),
      {},
    ),
  })
  .check(
    z.refine((e) => e.queue !== undefined || (e.provider === 'gitlab' && e.gitlabProjectId !== undefined), {
      message: 'queue is required (only a GitLab event may leave it to the tag lookup, with gitlabProjectId)',
      path: ['queue'],
    }),
  );

/** An event as it travels through SQS: a GitLab event's queue may still be unknown. */
export type QueuedJobEvent = z.infer<typeof JobEventSchema>;
/** An event routed to a served queue: what the ledger records. */
export type JobEvent = Omit<QueuedJobEvent, 'queue'> & { queue: string };

export function isRouted(event: QueuedJobEvent): event is JobEvent {
  return event.queue !== undefined;
}

/**
 * Deterministic event id: provider, job and kind. A redelivery of the same event (same job, same
 * transition) gets the same id, which SQS FIFO uses as deduplication id and the ledger treats as
 * a no-op anyway.
 */
export function eventId(provider: Provider, jobId: string, kind: JobEventKind): string {
  return createHash('sha256').update(`${provider}\n${jobId}\n${kind}`).digest('hex').slice(0, 32);
}

/** Ledger key of a CI job: provider-qualified so ids of two providers never collide. */
export function jobKey(event: Pick<JobEvent, 'provider' | 'jobId'>): string {
  return `${event.provider}:${event.jobId}`;
}

export type JobTrace = JobEvent['trace'];

/** The trace as stored: known fields only, each a bounded non-empty text. */
export function boundTrace(trace: Readonly<Record<string, unknown>> | undefined): JobTrace {
  const out: Record<string, string> = {};
  for (const field of TRACE_FIELDS) {
    const value = trace?.[field];
    if (typeof value !== 'string') continue;
    const text = boundedText(value, EVENT_BOUNDS.traceChars);
    if (text !== '') out[field] = text;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A received message with its optional fields cut to their bounds, so that a message recorded
 * before the bounds existed is still applied rather than refused for its trace.
 */
export function withBoundedOptionalFields(message: unknown): unknown {
  if (!isRecord(message)) return message;
  const { deliveryId, trace, ...rest } = message;
  const delivery = typeof deliveryId === 'string' ? boundDeliveryId(deliveryId) : deliveryId;
  return {
    ...rest,
    ...(delivery === undefined ? {} : { deliveryId: delivery }),
    ...(trace === undefined ? {} : { trace: isRecord(trace) ? boundTrace(trace) : trace }),
  };
}

/** The delivery id as stored, or undefined when nothing of it is usable. */
export function boundDeliveryId(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = boundedText(value, EVENT_BOUNDS.deliveryIdChars);
  return text === '' ? undefined : text;
}

/**
 * A message's JSON in ASCII only (every other character as a \uXXXX escape): SQS refuses some
 * characters (U+FFFE, U+FFFF, ...), and an escape is the same string to every JSON reader.
 */
export function eventMessageBody(event: QueuedJobEvent): string {
  return JSON.stringify(event).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * The last check before an event is recorded: every field within its format and bound, the id
 * the one eventId() gives, the message within EVENT_BOUNDS.messageBytes. Returns the first
 * problem, or undefined when the event may be enqueued.
 */
export function invalidJobEvent(event: unknown): string | undefined {
  const result = JobEventSchema.safeParse(event);
  if (!result.success) {
    const issue = result.error.issues[0];
    return `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`;
  }
  const valid = result.data;
  if (valid.id !== eventId(valid.provider, valid.jobId, valid.kind))
    return 'id: not the eventId of provider, job and kind';
  const bytes = eventMessageBody(valid).length; // ASCII: one byte per character
  if (bytes > EVENT_BOUNDS.messageBytes) return `message is ${bytes} bytes, over ${EVENT_BOUNDS.messageBytes}`;
  return undefined;
}

/** Thrown where an invalid event would otherwise be recorded (a bug upstream, never input). */
export class InvalidJobEventError extends Error {
  constructor(readonly reason: string) {
    super(`not a valid job event: ${reason}`);
    this.name = 'InvalidJobEventError';
  }
}
