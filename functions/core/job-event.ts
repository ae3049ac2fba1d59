/**
 * The normalised CI job event: what every provider's webhook becomes, what travels through SQS,
 * and what the scaler applies to the ledger. Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';

export const PROVIDERS = ['buildkite', 'github', 'gitlab'] as const;
export type Provider = (typeof PROVIDERS)[number];

export const JOB_EVENT_KINDS = ['scheduled', 'started', 'finished', 'cancelled'] as const;
export type JobEventKind = (typeof JOB_EVENT_KINDS)[number];

export const JobEventSchema = /* @__PURE__ */ z
  .object({
    /** Stable identity of this event: the same for every redelivery of it (see eventId()). */
    id: z.string().min(1),
    provider: z.enum(PROVIDERS),
    /** The provider's job id (Buildkite job UUID, GitHub workflow_job id, GitLab build id). */
    jobId: z.string().min(1),
    /**
     * The served queue whose agents could take the job. Absent only on a GitLab event: the Job
     * Hook carries no job tags, so the scaler looks them up (see gitlabProjectId) and sets it.
     */
    queue: z.string().min(1).optional(),
    /** GitLab: the project of the job, for `GET /projects/:id/jobs/:job_id` (its tag_list). */
    gitlabProjectId: z.string().min(1).optional(),
    kind: z.enum(JOB_EVENT_KINDS),
    /** When the provider says it happened (ISO-8601). */
    occurredAt: z.string().min(1),
    /** When our webhook received it (ISO-8601). */
    receivedAt: z.string().min(1),
    /** The provider's delivery id where it sends one (X-GitHub-Delivery, X-Gitlab-Event-UUID, ...). */
    deliveryId: z.string().optional(),
    /** What an operator needs to find the job: pipeline/repository, build/run, a link. */
    trace: z
      .object({
        pipeline: z.string().optional(),
        repository: z.string().optional(),
        build: z.string().optional(),
        run: z.string().optional(),
        url: z.string().optional(),
      })
      .default({}),
  })
  .strict()
  .refine((e) => e.queue !== undefined || (e.provider === 'gitlab' && e.gitlabProjectId !== undefined), {
    message: 'queue is required (only a GitLab event may leave it to the tag lookup, with gitlabProjectId)',
    path: ['queue'],
  });

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
