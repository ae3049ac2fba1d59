/**
 * One scaler tick and the loop that keeps ticking within an invocation. Orchestration only: the
 * decisions are the pure core's (core/decision.ts, core/limiter.ts, core/ledger.ts); every
 * outside system is reached through a port, so the same code runs against AWS, the emulators,
 * the local stack and the simulator.
 *
 * A tick:
 *  1. drains the events queue (long-poll first, then parallel drainers), applies the events to
 *     the ledger and deletes each message only once its event is durably applied;
 *  2. reads the limiter (strongly consistent), THEN lists our Jobs in the cluster (so a dispatch
 *     recorded as submitted before the read is visible in the list), and the ledger's counts;
 *  3. reconciles: returns the tokens of finished or vanished Jobs (once no create of theirs can
 *     land, see core/limiter.ts), retries intents that never became a Job (each create fenced
 *     by a conditional write first), releases expired ones, corrects a drifted counter;
 *  4. decides per queue and reserves tokens with one conditional write (re-reading on conflict);
 *  5. submits ONE Kubernetes Job per reservation and marks it submitted.
 * A crash between any two steps leaves an intent or a counter that the next tick repairs.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { Cluster } from '../adapters/kubernetes/cluster.js';
import type { ReceivedEvent } from '../adapters/sqs/events-queue.js';
import type { BackoffEvent, QueueBackoff } from '../core/backoff.js';
import { busyBound, type Decision, decide } from '../core/decision.js';
import { isRouted, type JobEvent, type QueuedJobEvent } from '../core/job-event.js';
import {
  type ClusterJob,
  CREATE_ISSUE_SLACK_MS,
  createsUntilFor,
  type DispatchAction,
  intentCreateGraceMs,
  mayCreate,
  mayIssue,
  planReconcile,
} from '../core/limiter.js';
import type { DispatchRecord, LedgerStore, LimiterRecord, LimiterStore } from '../core/stores.js';
import { type ObservedJob, observedJob, type WarmPoolTracker } from '../core/warm-pool.js';
import { describeError } from '../shared/errors.js';
import type { EventRouter, RouteOutcome } from './gitlab-routes.js';
import type { DispatchHooks } from './hooks.js';

export interface EventSource {
  receive(options: { max: number; waitSeconds: number }): Promise<ReceivedEvent[]>;
  /** Deletes the messages; returns the receipt handles that could not be deleted. */
  delete(receiptHandles: readonly string[]): Promise<string[]>;
  /** Delivers the message again only after `seconds` (best effort). */
  defer?(receiptHandle: string, seconds: number): Promise<void>;
}

/** What the scaler asks of the cluster: the Kubernetes adapter's interface. */
export type ClusterPort = Cluster;

export interface JobFactory {
  /** Deterministic Job name of a dispatch. */
  jobName(queue: string, dispatchId: string): string;
  /** The Kubernetes Job for a dispatch, from the queue's template. */
  build(dispatch: DispatchRecord): V1Job;
  /** Reads one of our Jobs back; undefined for a Job that is not ours. */
  describe(job: V1Job): ClusterJob | undefined;
}

export interface QueueLimits {
  readonly minAgents: number;
  readonly maxAgents: number;
}

export interface ScalerLog {
  debug(message: string, extra: Record<string, unknown>): void;
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface ScalerMetrics {
  /** Called once per queue per tick with the decision and how long deciding took. */
  decision(decision: Decision, created: number, latencyMs: number): void;
  /** Once per queue per tick when back-off is on: its step (0 = healthy) and new start failures. */
  backoff?(queue: string, step: number, startFailures: number): void;
}

export interface ScalerPorts {
  readonly events: EventSource;
  readonly ledger: LedgerStore;
  readonly limiter: LimiterStore;
  readonly cluster: ClusterPort;
  readonly jobs: JobFactory;
  /**
   * Gives an event without a queue (GitLab: the Job Hook has no job tags) its queue, or says
   * no queue can take it, or that it cannot tell yet (the event stays in SQS). Without a
   * router such events stay in SQS (then the dead-letter queue).
   */
  readonly router?: EventRouter;
  readonly log: ScalerLog;
  readonly metrics?: ScalerMetrics;
  /** Provider steps around a Job's creation (GitHub just-in-time runners). */
  readonly hooks?: DispatchHooks;
  /** Back-off of queues whose agents fail at start (needs cluster.listAgentPods). */
  readonly backoff?: QueueBackoff;
  /** Epoch milliseconds. */
  readonly now: () => number;
  /** Waits on the same clock as now() (default: real time). */
  readonly sleep?: (ms: number) => Promise<void>;
  /** The adaptive warm pool's measurements (WARM_POOL=adaptive); absent: no pool. */
  readonly warmPool?: WarmPoolTracker;
}

export interface ScalerSettings {
  readonly queues: readonly string[];
  readonly limits: Readonly<Record<string, QueueLimits>>;
  readonly intentLeaseMs: number;
  /** Parallel drainers once the first receive returned messages. */
  readonly drainConcurrency?: number;
  /**
   * Longest a tick drains before it provisions (default 5 s): with a backlog, agents for the
   * events drained so far are not held up by the rest; the next tick drains on at once.
   */
  readonly drainBudgetMs?: number;
  /** Reservation attempts per queue per tick when concurrent scalers conflict. */
  readonly reserveAttempts?: number;
}

export interface DrainReport {
  received: number;
  applied: number;
  duplicates: number;
  failed: number;
  invalid: number;
  undeleted: number;
  /** Events of CI jobs no served queue can take (deleted, counted nowhere). */
  unserved: number;
}

export interface TickReport {
  readonly drain: DrainReport;
  readonly decisions: readonly Decision[];
  readonly created: readonly { queue: string; jobName: string; count: number; result: 'created' | 'exists' }[];
  readonly released: number;
  readonly corrected: number;
  readonly errors: readonly string[];
}

/** Step 1: drain the queue until it is empty or the deadline is near. */
export async function drain(
  ports: ScalerPorts,
  settings: ScalerSettings,
  waitSeconds: number,
  deadline: number,
): Promise<DrainReport> {
  const report: DrainReport = {
    received: 0,
    applied: 0,
    duplicates: 0,
    failed: 0,
    invalid: 0,
    undeleted: 0,
    unserved: 0,
  };
  const { events, ledger, log } = ports;

  const route = async (events: QueuedJobEvent[]): Promise<RouteOutcome[]> => {
    if (events.every(isRouted)) return events.map((event) => ({ event }));
    if (!ports.router)
      return events.map((event) => (isRouted(event) ? { event } : { failed: 'no router for events without a queue' }));
    return ports.router.resolve(events).catch((e: unknown) => events.map(() => ({ failed: describeError(e) })));
  };

  /** Applies and deletes one batch; true when it had events and none could be applied. */
  const handle = async (batch: ReceivedEvent[]): Promise<boolean> => {
    report.received += batch.length;
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
        if (m.receiveCount <= 1)
          log.error('event not applied; it stays in the queue', {
            messageId: m.messageId,
            eventId: o.eventId,
            error: o.error,
          });
        return;
      }
      if (o.result === 'applied') {
        report.applied++;
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
  const first = await events.receive({ max: 10, waitSeconds: Math.min(waitSeconds, secondsLeft()) });
  if (first.length === 0) return report;

  const drainUntil = Math.min(deadline, ports.now() + (settings.drainBudgetMs ?? 5_000));
  // A batch none of whose events could be applied (DynamoDB unreachable, throttled past the
  // SDK's retries) stops the drain for this tick, rather than cycling every message towards the
  // dead-letter queue; the next tick tries again.
  let stop = await handle(first);
  const drainer = async (): Promise<void> => {
    while (!stop && ports.now() < drainUntil) {
      const batch = await events.receive({ max: 10, waitSeconds: 0 });
      if (batch.length === 0) return;
      if (await handle(batch)) stop = true;
    }
  };
  // allSettled: one drainer's failure must not leave the others running into the next tick.
  const settled = await Promise.allSettled(Array.from({ length: settings.drainConcurrency ?? 4 }, drainer));
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  return report;
}

interface QueueView {
  inFlight: number;
  version: number;
  /** False when a write of this tick's reconcile failed: the counter is left as is. */
  settled: boolean;
}

/** Steps 2–5. */
export async function provision(ports: ScalerPorts, settings: ScalerSettings): Promise<Omit<TickReport, 'drain'>> {
  const { limiter, ledger, cluster, jobs, log } = ports;
  const errors: string[] = [];
  const created: { queue: string; jobName: string; count: number; result: 'created' | 'exists' }[] = [];

  // Order matters: the limiter's snapshot BEFORE the cluster's list (see core/limiter.ts), and
  // the reconcile's clock read before the list: a create that could land only before it is listed.
  const snapshot = await limiter.snapshot();
  const listedAt = ports.now();
  const [counts, clusterJobs] = await Promise.all([
    ledger.counts(settings.queues, new Date(listedAt)),
    cluster.listAgentJobs(),
  ]);
  const ours = clusterJobs.map((j) => jobs.describe(j)).filter((j): j is ClusterJob => j !== undefined);
  // Listed after the Jobs: a failed index the Job list shows has its pod in this list.
  const pods = await listPods(ports, errors);
  const graceMs = intentCreateGraceMs(settings.intentLeaseMs);
  if (ports.warmPool) {
    const seen = clusterJobs.flatMap((j): ObservedJob[] => {
      const queue = jobs.describe(j)?.queue;
      const o = queue === undefined ? undefined : observedJob(j, queue);
      return o ? [o] : [];
    });
    ports.warmPool.observe(seen, ports.now());
  }

  const plan = planReconcile({
    limiters: snapshot.limiters,
    dispatches: snapshot.dispatches,
    jobs: ours,
    now: listedAt,
    createGraceMs: graceMs,
    queues: settings.queues,
  });

  const views = new Map<string, QueueView>();
  for (const [queue, inFlight] of Object.entries(plan.inFlight)) {
    views.set(queue, { inFlight, version: plan.versions[queue] ?? 0, settled: true });
  }

  /** Issues a create fenced at `fencedAt` (by the reservation or by beginCreate). */
  const submit = async (dispatch: DispatchRecord, fencedAt: number): Promise<void> => {
    // Checked again right before the call: the snapshot may be older than the grace period, and
    // the fence's createsUntil holds only for a create issued promptly after it.
    const now = ports.now();
    if (!mayCreate(dispatch, now, graceMs) || !mayIssue(fencedAt, now)) return;
    let result: 'created' | 'exists';
    try {
      let job = jobs.build(dispatch);
      if (ports.hooks) {
        job = await ports.hooks.beforeCreate(dispatch, job);
        // Minting may have taken longer than the fence allows (a big batch, a slow provider): the
        // create is then left to the next tick, whose hook finds the credentials ready at once.
        const after = ports.now();
        if (!mayCreate(dispatch, after, graceMs) || !mayIssue(fencedAt, after)) return;
      }
      result = await cluster.createJob(job);
      ports.backoff?.created(dispatch.queue, dispatch.jobName, ports.now());
      // Before markSubmitted: if this fails, the next tick finds the Job still an intent and retries it.
      await ports.hooks?.afterCreate(dispatch);
    } catch (e) {
      // The tokens stay reserved: the intent is retried next tick and released when its lease
      // expires. A create refused with a 4xx can no longer land: settled. Without an answer (or
      // a 5xx) it may still land, until the fence's createsUntil.
      if (refusedByServer(e))
        await limiter.settleCreate(dispatch, false).catch((f: unknown) => {
          errors.push(`settle ${dispatch.jobName}: ${describeError(f)}`);
        });
      errors.push(`create ${dispatch.jobName}: ${describeError(e)}`);
      log.warn('agent Job not created; intent kept for retry', {
        queue: dispatch.queue,
        jobName: dispatch.jobName,
        error: describeError(e),
      });
      return;
    }
    created.push({ queue: dispatch.queue, jobName: dispatch.jobName, count: dispatch.count, result });
    // If this fails the Job still exists: the next tick sees it and marks the intent submitted;
    // its tokens are then held until the fence's createsUntil.
    await limiter.settleCreate(dispatch, true).catch((e: unknown) => {
      errors.push(`mark ${dispatch.jobName} submitted: ${describeError(e)}`);
    });
  };

  /** Retries an intent: fences one more create (conditional write), then issues it. */
  const retry = async (dispatch: DispatchRecord): Promise<void> => {
    const fencedAt = ports.now();
    if (!mayCreate(dispatch, fencedAt, graceMs)) return;
    const createsUntil = createsUntilFor(dispatch, fencedAt, graceMs);
    // Refused: another scaler fenced a create of it since our snapshot, or it was submitted or
    // released. Either way that scaler's create (or none) is the one to issue.
    if (!(await limiter.beginCreate(dispatch, createsUntil))) return;
    await submit({ ...dispatch, attempts: (dispatch.attempts ?? 1) + 1, createsUntil }, fencedAt);
  };

  let released = 0;
  const unsettle = (a: DispatchAction) => {
    const view = views.get(a.dispatch.queue);
    if (view) view.settled = false;
  };
  const carry = async (a: DispatchAction): Promise<void> => {
    try {
      switch (a.kind) {
        case 'keep':
          return;
        case 'create':
          await retry(a.dispatch);
          return;
        case 'update':
          if (a.markSubmitted) {
            // Before markSubmitted: a Job whose provider step (its Secret) is missing is completed here.
            await ports.hooks?.afterCreate(a.dispatch);
            await limiter.markSubmitted(a.dispatch);
          }
          // Refused when a create was fenced since the snapshot: the counter is left as is.
          if (a.tokens !== a.dispatch.tokens && !(await limiter.setTokens(a.dispatch, a.tokens))) unsettle(a);
          return;
        case 'release':
          // Refused when a create was fenced since the snapshot: its tokens stay.
          if (!(await limiter.release(a.dispatch))) {
            unsettle(a);
            return;
          }
          released += a.dispatch.tokens;
          log.info('tokens returned', {
            queue: a.dispatch.queue,
            jobName: a.dispatch.jobName,
            tokens: a.dispatch.tokens,
            why: a.why,
          });
          return;
      }
    } catch (e) {
      errors.push(`reconcile ${a.dispatch.jobName}: ${describeError(e)}`);
      unsettle(a);
    }
  };
  await Promise.all(plan.actions.map(carry));

  if (ports.hooks?.housekeeping) {
    await ports.hooks
      .housekeeping({ jobs: ours, dispatches: snapshot.dispatches, ...(pods ? { pods } : {}), now: ports.now() })
      .catch((e: unknown) => log.warn('housekeeping failed; tried again later', { error: describeError(e) }));
  }

  let corrected = 0;
  await Promise.all(
    plan.corrections.map(async (c) => {
      const view = views.get(c.queue);
      if (!view?.settled) return;
      const ok = await limiter
        .correct({ queue: c.queue, expectedVersion: c.expectedVersion, inFlight: c.to })
        .catch((e: unknown) => {
          errors.push(`correct ${c.queue}: ${describeError(e)}`);
          return false;
        });
      if (ok) {
        corrected++;
        view.version = c.expectedVersion + 1;
        const orphans = plan.orphans[c.queue] ?? 0;
        log.info('limiter counter corrected to the cluster', {
          queue: c.queue,
          from: c.from,
          to: c.to,
          orphanAgents: orphans,
        });
      } else {
        view.settled = false;
      }
    }),
  );

  const decisions = await Promise.all(
    settings.queues.map(async (queue) => {
      const started = performance.now();
      const limits = settings.limits[queue] ?? { minAgents: 0, maxAgents: 0 };
      const { pending, running, runningSince } = counts[queue] ?? { pending: 0, running: 0 };
      const supply = plan.supply[queue] ?? 0;
      // Running CI jobs started before every agent of ours was made have no agent any more:
      // their `finished` is late. (End of the second: openAt is whole seconds.)
      const bound = runningSince
        ? busyBound(
            runningSince.map((s) => (s + 1) * 1000),
            plan.batches[queue] ?? [],
          )
        : undefined;
      const pool = ports.warmPool?.size(queue, ports.now());
      const warm = pool ? { warm: pool.warm } : {};
      const observe = (inFlight: number) =>
        decide({
          queue,
          pending,
          running,
          inFlight,
          supply: Math.min(supply, inFlight),
          ...(bound === undefined ? {} : { busyBound: bound }),
          ...limits,
          ...warm,
        });
      let view = views.get(queue) ?? { inFlight: 0, version: 0, settled: true };
      // A queue backing off creates nothing, or one probe agent; the other queues are not held.
      const gate = ports.backoff?.gate(queue, ports.now());
      const held = (d: Decision): Decision => (gate && d.count > gate.allow ? { ...d, count: gate.allow } : d);
      let decision = held(observe(view.inFlight));
      let made = 0;
      const attempts = settings.reserveAttempts ?? 4;
      for (let attempt = 0; attempt < attempts && decision.count > 0; attempt++) {
        if (!view.settled) {
          // Our correction did not land (a concurrent scaler moved the counter): decide on the
          // limiter's own counter, which only ever overstates what is in flight.
          const fresh = await readLimiter(limiter, queue);
          view = { inFlight: Math.max(fresh.inFlight, view.inFlight), version: fresh.version, settled: true };
          decision = held(observe(view.inFlight));
          if (decision.count === 0) break;
        }
        const dispatchId = String(view.version + 1);
        const now = ports.now();
        const dispatch: DispatchRecord = {
          queue,
          dispatchId,
          jobName: jobs.jobName(queue, dispatchId),
          count: decision.count,
          tokens: decision.count,
          status: 'intent',
          createdAt: now,
          leaseUntil: now + settings.intentLeaseMs,
          // The reservation fences the first create.
          attempts: 1,
          settled: 0,
          createsUntil: now + CREATE_ISSUE_SLACK_MS + graceMs,
        };
        const reserved = await limiter.reserve({
          queue,
          count: decision.count,
          max: limits.maxAgents,
          expectedVersion: view.version,
          dispatch,
        });
        if (reserved === 'reserved') {
          made = decision.count;
          await submit(dispatch, now);
          break;
        }
        view.settled = false;
      }
      const latencyMs = performance.now() - started;
      log.info('scaling decision', {
        queue,
        pending: decision.pending,
        running: decision.running,
        inFlight: decision.inFlight,
        supply: decision.supply,
        busyBound: decision.busyBound,
        idle: decision.idle,
        minAgents: decision.minAgents,
        maxAgents: decision.maxAgents,
        count: decision.count,
        reason: decision.reason,
        reserved: made,
        ...(gate && gate.step > 0 ? { backoffStep: gate.step, heldUntil: new Date(gate.holdUntil).toISOString() } : {}),
        ...(pool ?? {}),
      });
      ports.metrics?.decision(decision, made, latencyMs);
      return { ...decision, count: made };
    }),
  );

  return { decisions, created, released, corrected, errors };
}

/** The agent pods, when back-off or a hook needs them; fed to the back-off. Undefined if not listed. */
async function listPods(ports: ScalerPorts, errors: string[]): Promise<V1Pod[] | undefined> {
  const { cluster, backoff, log } = ports;
  if (!cluster.listAgentPods || (!backoff && !ports.hooks?.housekeeping)) return undefined;
  let pods: V1Pod[];
  try {
    pods = await cluster.listAgentPods();
  } catch (e) {
    // Without the pods the back-off keeps its state from the last tick.
    errors.push(`list pods: ${describeError(e)}`);
    return undefined;
  }
  if (!backoff) return pods;
  const events = backoff.observe(pods, ports.now());
  const failures = new Map<string, number>();
  for (const e of events) logBackoff(log, e, failures);
  for (const [queue, step] of Object.entries(backoff.steps()))
    ports.metrics?.backoff?.(queue, step, failures.get(queue) ?? 0);
  return pods;
}

function logBackoff(log: ScalerLog, e: BackoffEvent, failures: Map<string, number>): void {
  if (e.kind === 'recovered') {
    log.info('queue back-off over: an agent started healthy', { queue: e.queue, step: e.step });
    return;
  }
  failures.set(e.queue, (failures.get(e.queue) ?? 0) + 1);
  log.warn(
    `queue ${e.queue} backs off ${Math.round(e.holdMs / 1000)} s: agent failed at start (${e.reason}: ${e.message})`,
    {
      queue: e.queue,
      step: e.step,
      holdSeconds: Math.round(e.holdMs / 1000),
      reason: e.reason,
      message: e.message,
      pod: e.pod,
      jobName: e.jobName,
    },
  );
}

/** A create the API server answered with a 4xx (not 408): it was refused and will never land. */
function refusedByServer(e: unknown): boolean {
  const status = (e as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 408;
}

async function readLimiter(limiter: LimiterStore, queue: string): Promise<LimiterRecord> {
  const snapshot = await limiter.snapshot();
  return snapshot.limiters.find((l) => l.queue === queue) ?? { queue, inFlight: 0, version: 0 };
}

/** One tick: drain (waiting up to waitSeconds for the first event), then provision. */
export async function tick(
  ports: ScalerPorts,
  settings: ScalerSettings,
  options: { waitSeconds: number; deadline: number },
): Promise<TickReport> {
  const drained = await drain(ports, settings, options.waitSeconds, options.deadline);
  const rest = await provision(ports, settings);
  return { drain: drained, ...rest };
}

/**
 * Keeps ticking until the budget is spent: the first tick at once, then each one as soon as an
 * event arrives (long poll), or after pollSeconds without one. While CI jobs are waiting for an
 * agent, it re-ticks at least every busyPollSeconds: an agent that just finished a CI job still
 * looks idle until its pod's exit shows in the Job status, and only a fresh look at the cluster
 * sees it go. The last long poll uses whatever budget is left, so a one-minute schedule with a
 * budget close to a minute leaves almost no gap between invocations. Sub-minute scale-up.
 */
export async function run(
  ports: ScalerPorts,
  settings: ScalerSettings,
  options: { budgetMs: number; pollSeconds: number; busyPollSeconds?: number; signal?: AbortSignal },
): Promise<TickReport[]> {
  const deadline = ports.now() + options.budgetMs;
  const busyPoll = Math.min(options.pollSeconds, options.busyPollSeconds ?? 2);
  const reports: TickReport[] = [];
  let lastError: unknown;
  let waitSeconds = 0;
  for (;;) {
    let waiting = false;
    let failed = false;
    try {
      const report = await tick(ports, settings, { waitSeconds, deadline });
      reports.push(report);
      waiting = report.decisions.some((d) => d.pending > 0);
    } catch (e) {
      // A failed tick (cluster, SQS or DynamoDB unreachable, ...) leaves nothing the next one
      // cannot repair: keep ticking, and fail the invocation only if no tick succeeded.
      failed = true;
      lastError = e;
      ports.log.error('scaler tick failed', { error: describeError(e) });
    }
    const secondsLeft = Math.floor((deadline - ports.now()) / 1000);
    if (options.signal?.aborted || secondsLeft < 1) break;
    waitSeconds = Math.min(waiting ? busyPoll : options.pollSeconds, secondsLeft);
    if (failed) {
      // Back off before retrying: the failure may have been the long poll itself.
      const ms = Math.min(waitSeconds, 5) * 1000;
      await (ports.sleep ? ports.sleep(ms) : new Promise((resolve) => setTimeout(resolve, ms)));
      waitSeconds = 0;
    }
  }
  if (reports.length === 0 && lastError !== undefined) throw lastError;
  return reports;
}
