/**
 * Stage 1, drain: receives the events queue (a long poll first, then parallel drainers), gives an
 * event without a queue its queue (the router), applies the events to the ledger and deletes each
 * message only once its event is durably applied. What is not applied stays in the queue.
 */
import { isRouted, type JobEvent, type QueuedJobEvent } from '../core/job-event.js';
import { describeError } from '../shared/errors.js';
import type { ReceivedEvent, RouteOutcome, ScalerPorts, ScalerSettings } from './ports.js';

/** Messages per receive: SQS's most, and what a full batch is (more is waiting). */
const BATCH = 10;
/** Longest a tick drains (default of settings.drainBudgetMs). */
export const MAX_DRAIN_MS = 5_000;
/** Shortest drain budget loop.ts gives a tick. */
export const MIN_DRAIN_MS = 150;

/**
 * The drain budget of the next tick: twice what the last provisioning took, within
 * [MIN_DRAIN_MS, max]. Under a sustained stream the queue never empties, so a tick ends its
 * drain only on the budget: a short budget provisions the events just drained within a few
 * hundred milliseconds, and when provisioning gets slow (a big backlog to count, a slow cluster)
 * the drain grows with it, so provisioning never takes more than a third of the time.
 */
export function nextDrainBudgetMs(provisionMs: number | undefined, maxMs: number = MAX_DRAIN_MS): number {
  return Math.min(maxMs, Math.max(MIN_DRAIN_MS, 2 * Math.max(0, provisionMs ?? 0)));
}

export interface DrainReport {
  received: number;
  applied: number;
  /**
   * `scheduled` events applied, or found already applied (a redelivery after a crash that may
   * have come before provisioning): only they can add demand (scaler.ts tick).
   */
  scheduled: number;
  duplicates: number;
  failed: number;
  invalid: number;
  undeleted: number;
  /** Events of CI jobs no served queue can take (deleted, counted nowhere). */
  unserved: number;
  /** The drain ended on its budget with receives still coming back full: more is waiting. */
  backlog: boolean;
  /**
   * The lag at the drain's end: the age (ms, by SQS's SentTimestamp) of the oldest event known
   * not applied: a message that failed, or with a backlog the next one waiting, taken as old as
   * the newest message received (SQS hands out about the oldest first); 0 when the queue looked
   * drained. Events still on their way to SQS are not seen.
   */
  lagMs: number;
  /** The age (ms, by SentTimestamp) of the oldest event applied in this drain when it was applied. */
  appliedAgeMs: number;
}

/**
 * Drains the queue until it is empty, the drain budget (default settings.drainBudgetMs) is spent
 * or the deadline is near.
 */
export async function drain(
  ports: ScalerPorts,
  settings: ScalerSettings,
  waitSeconds: number,
  deadline: number,
  budgetMs: number = settings.drainBudgetMs ?? MAX_DRAIN_MS,
): Promise<DrainReport> {
  const report: DrainReport = {
    received: 0,
    applied: 0,
    scheduled: 0,
    duplicates: 0,
    failed: 0,
    invalid: 0,
    undeleted: 0,
    unserved: 0,
    backlog: false,
    lagMs: 0,
    appliedAgeMs: 0,
  };
  const { events, ledger, log } = ports;
  let newestSent = 0;
  let oldestFailed = Number.POSITIVE_INFINITY;
  const failedAt = (m: ReceivedEvent) => {
    if (m.sentAt !== undefined) oldestFailed = Math.min(oldestFailed, m.sentAt);
  };

  const route = async (events: QueuedJobEvent[]): Promise<RouteOutcome[]> => {
    if (events.every(isRouted)) return events.map((event) => ({ event }));
    if (!ports.router)
      return events.map((event) => (isRouted(event) ? { event } : { failed: 'no router for events without a queue' }));
    return ports.router.resolve(events).catch((e: unknown) => events.map(() => ({ failed: describeError(e) })));
  };

  /** Applies and deletes one batch; true when it had events and none could be applied. */
  const handle = async (batch: ReceivedEvent[]): Promise<boolean> => {
    report.received += batch.length;
    for (const m of batch) if (m.sentAt !== undefined) newestSent = Math.max(newestSent, m.sentAt);
    const parsed = batch.filter((m): m is ReceivedEvent & { event: QueuedJobEvent } => m.event !== undefined);
    for (const m of batch) {
      if (m.event) continue;
      report.invalid++;
      // Left in the queue: SQS redrives it to the dead-letter queue after maxReceiveCount.
      if (m.receiveCount <= 1)
        log.error('invalid event message set aside for the dead-letter queue', {
          messageId: m.messageId,
          error: m.error,
        });
    }
    if (parsed.length === 0) return false;
    const routes = await route(parsed.map((m) => m.event));
    const done: string[] = [];
    const valid: (ReceivedEvent & { event: JobEvent })[] = [];
    routes.forEach((r, i) => {
      const m = parsed[i];
      if (!m) return;
      if ('event' in r) {
        valid.push({ ...m, event: r.event });
      } else if ('ignored' in r) {
        report.unserved++;
        done.push(m.receiptHandle);
        log.info('job no queue can serve; not counted', {
          eventId: m.event.id,
          jobId: m.event.jobId,
          reason: r.ignored,
        });
      } else {
        report.failed++;
        failedAt(m);
        // While the lookup API is paused, the message comes back only when it may be asked
        // again: each delivery (counted towards maxReceiveCount) is then a real attempt.
        if (r.retryAfterMs !== undefined && ports.events.defer)
          ports.events.defer(m.receiptHandle, Math.max(1, r.retryAfterMs / 1000)).catch(() => undefined);
        // Not routed to a guess: it stays in the queue and is retried on a later receive.
        if (m.receiveCount <= 1)
          log.error('event not routed; it stays in the queue', {
            messageId: m.messageId,
            eventId: m.event.id,
            error: r.failed,
          });
      }
    });
    const outcomes =
      valid.length === 0
        ? []
        : await ledger
            .apply(
              valid.map((m) => m.event),
              new Date(ports.now()),
            )
            .catch((e: unknown) =>
              valid.map((m) => ({ eventId: m.event.id, result: 'failed' as const, error: describeError(e) })),
            );
    valid.forEach((m, i) => {
      // A ledger that answers for fewer events than it was given: the rest stay in the queue.
      const o = outcomes[i] ?? { eventId: m.event.id, result: 'failed' as const, error: 'no outcome from the ledger' };
      if (o.result === 'failed') {
        report.failed++;
        failedAt(m);
        if (m.receiveCount <= 1)
          log.error('event not applied; it stays in the queue', {
            messageId: m.messageId,
            eventId: o.eventId,
            error: o.error,
          });
        return;
      }
      if (m.event.kind === 'scheduled') report.scheduled++;
      if (m.sentAt !== undefined) report.appliedAgeMs = Math.max(report.appliedAgeMs, ports.now() - m.sentAt);
      if (o.result === 'applied') {
        report.applied++;
        ports.exited?.applied(m.event.queue, m.event.kind, Date.parse(m.event.occurredAt), ports.now());
        if (m.event.kind === 'scheduled')
          ports.warmPool?.arrived(m.event.queue, Date.parse(m.event.occurredAt), ports.now());
      } else report.duplicates++;
      done.push(m.receiptHandle);
    });
    if (done.length > 0) {
      const undeleted = await events.delete(done).catch(() => done);
      // Not deleted: redelivered later and then a no-op in the ledger. Nothing is lost.
      report.undeleted += undeleted.length;
    }
    return done.length === 0;
  };

  const secondsLeft = () => Math.max(0, Math.floor((deadline - ports.now()) / 1000));
  const first = await events.receive({ max: BATCH, waitSeconds: Math.min(waitSeconds, secondsLeft()) });
  // Nothing received: nothing known waiting (lag 0).
  if (first.length === 0) return report;

  const drainUntil = Math.min(deadline, ports.now() + budgetMs);
  // A batch none of whose events could be applied (DynamoDB unreachable, throttled past the
  // SDK's retries) stops the drain for this tick, rather than cycling every message towards the
  // dead-letter queue; the next tick tries again.
  let stop = await handle(first);
  // Drainers are added only while receives come back full (more is waiting), up to
  // drainConcurrency; a drainer stops at a batch that is not full: the queue looked drained, and
  // every further receive would be an empty one (a request each) at a low rate.
  const concurrency = settings.drainConcurrency ?? 4;
  const drainers: Promise<void>[] = [];
  // A drainer's failure is kept (handled at once, it may fail before it is awaited) and thrown
  // once every drainer has finished: none is left running into the next tick.
  const failures: unknown[] = [];
  const more = (batch: readonly unknown[]) => {
    if (batch.length >= BATCH && drainers.length < concurrency)
      drainers.push(drainer().catch((e: unknown) => void failures.push(e)));
  };
  async function drainer(): Promise<void> {
    while (!stop) {
      if (ports.now() >= drainUntil) {
        report.backlog = true;
        return;
      }
      const batch = await events.receive({ max: BATCH, waitSeconds: 0 });
      more(batch);
      if (batch.length > 0 && (await handle(batch))) stop = true;
      if (batch.length < BATCH) return;
    }
  }
  more(first);
  for (let done = 0; done < drainers.length; ) {
    const upto = drainers.length; // drainers may start more while these run
    await Promise.all(drainers.slice(done, upto));
    done = upto;
  }
  if (failures.length > 0) throw failures[0];
  const unapplied = Math.min(oldestFailed, report.backlog && newestSent > 0 ? newestSent : Number.POSITIVE_INFINITY);
  report.lagMs = Number.isFinite(unapplied) ? Math.max(0, ports.now() - unapplied) : 0;
  return report;
}
