/**
 * The one JobEvent builder of the tests and benchmarks: an event as the webhook records it, with
 * the id derived from (provider, jobId, kind) as the webhook derives it. Tests that check what a
 * webhook PARSED spell the expected event out instead.
 */
import { eventId, type JobEvent, type JobEventKind } from '../../functions/core/job-event.js';

export type JobEventFields = Partial<Omit<JobEvent, 'jobId' | 'kind'>>;

/** Defaults: Buildkite, queue `default`, occurred and received now, empty trace. */
export function jobEvent(jobId: string, kind: JobEventKind = 'scheduled', fields: JobEventFields = {}): JobEvent {
  const provider = fields.provider ?? 'buildkite';
  const now = new Date().toISOString();
  return {
    id: eventId(provider, jobId, kind),
    provider,
    jobId,
    queue: 'default',
    kind,
    occurredAt: fields.occurredAt ?? now,
    receivedAt: fields.receivedAt ?? fields.occurredAt ?? now,
    trace: {},
    ...fields,
  };
}
