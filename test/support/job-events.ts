/**
 * The one JobEvent builder of the tests and benchmarks: an event as the webhook records it, with
 * the id derived from (provider, jobId, kind) as the webhook derives it. Tests that check what a
 * webhook PARSED spell the expected event out instead.
 */
import { eventId, type JobEvent, type JobEventKind, type QueuedJobEvent } from '../../functions/core/job-event.js';
import type { ReceivedEvent } from '../../functions/scaler/ports.js';

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

/** Queued events as the events queue delivers them (one receive each, receipt handles of their own). */
export function asMessages(batch: readonly QueuedJobEvent[]): ReceivedEvent[] {
  return batch.map((event, i) => ({ receiptHandle: `${event.id}-${i}`, messageId: event.id, receiveCount: 1, event }));
}
