/**
 * Stage 1, drain: receives the events queue (a long poll first, then parallel drainers), gives an
 * event without a queue its queue (the router), applies the events to the ledger and deletes each
 * message only once its event is durably applied. What is not applied stays in the queue.
 */
import { isRouted, type JobEvent, type QueuedJobEvent } from '../core/job-event.js';
import type { ApplyOutcome } from '../core/stores.js';
import { describeError } from '../shared/errors.js';
import type { ReceivedEvent, RouteOutcome, ScalerPorts, ScalerSettings } from './ports.js';
import { routeEvents } from './provider-ports.js';

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

/** A batch's message whose event parsed. */
type Parsed = ReceivedEvent & { event: QueuedJobEvent };
/** A batch's message whose event has its queue. */
type Routed = ReceivedEvent & { event: JobEvent };

/** What one drain carries from batch to batch: the report and the ages behind its lag. */
interface DrainState {
  readonly ports: ScalerPorts;
  readonly report: DrainReport;
  /** The newest SentTimestamp received. */
  newestSent: number;
  /** The oldest SentTimestamp of a message that failed. */
  oldestFailed: number;
}

function emptyReport(): DrainReport {
  return {
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
}

function failedAt(state: DrainState, m: ReceivedEvent): void {
  if (m.sentAt !== undefined) state.oldestFailed = Math.min(state.oldestFailed, m.sentAt);
}

/** Gives each event its queue: its provider's router for those without one. */
async function route(ports: ScalerPorts, events: QueuedJobEvent[]): Promise<RouteOutcome[]> {
  if (events.every(isRouted)) return events.map((event) => ({ event }));
  return routeEvents(ports, events);
}

/** Counts a batch in and sets its unparseable messages aside; the messages whose event parsed. */
function takeBatch(state: DrainState, batch: ReceivedEvent[]): Parsed[] {
  const { report, ports } = state;
  report.received += batch.length;
  for (const m of batch) if (m.sentAt !== undefined) state.newestSent = Math.max(state.newestSent, m.sentAt);
  const parsed = batch.filter((m): m is Parsed => m.event !== undefined);
  for (const m of batch) {
    if (m.event) continue;
    report.invalid++;
    // Left in the queue: SQS redrives it to the dead-letter queue after maxReceiveCount.
    if (m.receiveCount <= 1)
      ports.log.error('invalid event message set aside for the dead-letter queue', {
        messageId: m.messageId,
        error: m.error,
      });
  }
  return parsed;
}

/** A message no served queue can take: deleted, counted nowhere. */
function unserved(state: DrainState, m: Parsed, reason: string, done: string[]): void {
  state.report.unserved++;
  done.push(m.receiptHandle);
  state.ports.log.info('job no queue can serve; not counted', {
    eventId: m.event.id,
    jobId: m.event.jobId,
    reason,
  });
}

/** A message whose routing failed: it stays in the queue (deferred while the lookup is paused). */
function unrouted(state: DrainState, m: Parsed, failed: string, retryAfterMs: number | undefined): void {
  const { ports } = state;
  state.report.failed++;
  failedAt(state, m);
  // While the lookup API is paused, the message comes back only when it may be asked
  // again: each delivery (counted towards maxReceiveCount) is then a real attempt.
  if (retryAfterMs !== undefined && ports.events.defer)
    ports.events.defer(m.receiptHandle, Math.max(1, retryAfterMs / 1000)).catch(() => undefined);
  // Not routed to a guess: it stays in the queue and is retried on a later receive.
  if (m.receiveCount <= 1)
    ports.log.error('event not routed; it stays in the queue', {
      messageId: m.messageId,
      eventId: m.event.id,
      error: failed,
    });
}

/** Sorts the routing outcomes: the messages routed to a queue, to apply. */
function sortRoutes(state: DrainState, parsed: Parsed[], routes: RouteOutcome[], done: string[]): Routed[] {
  const valid: Routed[] = [];
  routes.forEach((r, i) => {
    const m = parsed[i];
    if (!m) return;
    if ('event' in r) valid.push({ ...m, event: r.event });
    else if ('ignored' in r) unserved(state, m, r.ignored, done);
    else unrouted(state, m, r.failed, r.retryAfterMs);
  });
  return valid;
}

/** Applies the routed events to the ledger; a failed call fails each of them. */
async function applyToLedger(ports: ScalerPorts, valid: Routed[]): Promise<ApplyOutcome[]> {
  if (valid.length === 0) return [];
  return ports.ledger
    .apply(
      valid.map((m) => m.event),
      new Date(ports.now()),
    )
    .catch((e: unknown) =>
      valid.map((m) => ({ eventId: m.event.id, result: 'failed' as const, error: describeError(e) })),
    );
}

/** Counts one event's ledger outcome; the messages applied (or duplicates) go to `done`. */
function recordOutcome(state: DrainState, m: Routed, outcome: ApplyOutcome | undefined, done: string[]): void {
  const { report, ports } = state;
  // A ledger that answers for fewer events than it was given: the rest stay in the queue.
  const o = outcome ?? { eventId: m.event.id, result: 'failed' as const, error: 'no outcome from the ledger' };
  if (o.result === 'failed') {
    report.failed++;
    failedAt(state, m);
    if (m.receiveCount <= 1)
      ports.log.error('event not applied; it stays in the queue', {
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
}

/** Deletes the messages done with. */
async function deleteDone(state: DrainState, done: string[]): Promise<void> {
  if (done.length === 0) return;
  const undeleted = await state.ports.events.delete(done).catch(() => done);
  // Not deleted: redelivered later and then a no-op in the ledger. Nothing is lost.
  state.report.undeleted += undeleted.length;
}

/** Applies and deletes one batch; true when it had events and none could be applied. */
async function handle(state: DrainState, batch: ReceivedEvent[]): Promise<boolean> {
  const parsed = takeBatch(state, batch);
  if (parsed.length === 0) return false;
  const routes = await route(
    state.ports,
    parsed.map((m) => m.event),
  );
  const done: string[] = [];
  const valid = sortRoutes(state, parsed, routes, done);
  const outcomes = await applyToLedger(state.ports, valid);
  valid.forEach((m, i) => {
    recordOutcome(state, m, outcomes[i], done);
  });
  await deleteDone(state, done);
  return done.length === 0;
}

/**
 * Handles the first batch, then drains in parallel while receives come back full, until the
 * queue looks drained, a batch could not be applied at all or `drainUntil`.
 */
async function drainOn(
  state: DrainState,
  first: ReceivedEvent[],
  drainUntil: number,
  concurrency: number,
): Promise<void> {
  const { ports, report } = state;
  // A batch none of whose events could be applied (DynamoDB unreachable, throttled past the
  // SDK's retries) stops the drain for this tick, rather than cycling every message towards the
  // dead-letter queue; the next tick tries again.
  let stop = await handle(state, first);
  // Drainers are added only while receives come back full (more is waiting), up to
  // drainConcurrency; a drainer stops at a batch that is not full: the queue looked drained, and
  // every further receive would be an empty one (a request each) at a low rate.
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
      const batch = await ports.events.receive({ max: BATCH, waitSeconds: 0 });
      more(batch);
      if (batch.length > 0 && (await handle(state, batch))) stop = true;
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
}

/** The lag at the drain's end (DrainReport.lagMs). */
function lagAtEnd(state: DrainState): number {
  const { report, ports } = state;
  const unapplied = Math.min(
    state.oldestFailed,
    report.backlog && state.newestSent > 0 ? state.newestSent : Number.POSITIVE_INFINITY,
  );
  return Number.isFinite(unapplied) ? Math.max(0, ports.now() - unapplied) : 0;
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
  const state: DrainState = { ports, report: emptyReport(), newestSent: 0, oldestFailed: Number.POSITIVE_INFINITY };
  const secondsLeft = () => Math.max(0, Math.floor((deadline - ports.now()) / 1000));
  const first = await ports.events.receive({ max: BATCH, waitSeconds: Math.min(waitSeconds, secondsLeft()) });
  // Nothing received: nothing known waiting (lag 0).
  if (first.length === 0) return state.report;
  const drainUntil = Math.min(deadline, ports.now() + budgetMs);
  await drainOn(state, first, drainUntil, settings.drainConcurrency ?? 4);
  state.report.lagMs = lagAtEnd(state);
  return state.report;
}
