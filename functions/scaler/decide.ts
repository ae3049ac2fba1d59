/**
 * Stage 3, decide: a queue's observation this tick (the ledger's pending and running counts, the
 * agents our Jobs supply, the busy bound of running CI jobs, the warm pool, the queue's back-off)
 * and core/decision.ts's decision on it for a given number of agents in flight; then the
 * decision's log line and metrics.
 */
import type { V1Job } from '@kubernetes/client-node';
import type { BackoffEvent, Gate } from '../core/backoff.js';
import { busyBound, type Decision, decide } from '../core/decision.js';
import type { QueueCounts } from '../core/stores.js';
import { type ObservedJob, observedJob, type WarmPoolSize } from '../core/warm-pool.js';
import type { QueueLimits, ScalerLog, ScalerPorts, ScalerSettings } from './ports.js';
import type { PodLook, Reconciled } from './reconcile.js';

export interface QueueDecider {
  readonly queue: string;
  readonly limits: QueueLimits;
  /** The warm pool's size and inputs this tick; absent without a warm pool. */
  readonly pool: WarmPoolSize | undefined;
  /** The queue's back-off this tick; absent without back-off. */
  readonly gate: Gate | undefined;
  /** The ledger stopped counting at the cap (reconcile.ts countCaps): pending/running are "at least". */
  readonly countsCapped: boolean;
  /** The decision with `inFlight` agents in flight (the limiter's count). */
  decide(inFlight: number): Decision;
}

/** Gives the warm pool the agents just listed (their start-up times). */
export function measureWarmPool(ports: ScalerPorts, clusterJobs: readonly V1Job[]): void {
  if (!ports.warmPool) return;
  const seen = clusterJobs.flatMap((j): ObservedJob[] => {
    const queue = ports.jobs.describe(j)?.queue;
    const o = queue === undefined ? undefined : observedJob(j, queue);
    return o ? [o] : [];
  });
  ports.warmPool.observe(seen, ports.now());
}

/** Gives ExitedAgents our Jobs just listed (their succeeded agents). */
export function measureExited(ports: ScalerPorts, clusterJobs: readonly V1Job[]): void {
  if (!ports.exited) return;
  const seen = clusterJobs.flatMap((j) => {
    const described = ports.jobs.describe(j);
    return described
      ? [{ jobName: described.jobName, queue: described.queue, succeeded: j.status?.succeeded ?? 0 }]
      : [];
  });
  ports.exited.observe(seen, ports.now());
}

/** Feeds the back-off the agent pods just listed; logs and measures what it found. */
export function measureBackoff(ports: ScalerPorts, look: PodLook | undefined): void {
  const { backoff, log } = ports;
  if (!look || !backoff) return;
  const events = backoff.observe(look.pods, ports.now(), look);
  const failures = new Map<string, number>();
  for (const e of events) logBackoff(log, e, failures);
  for (const [queue, step] of Object.entries(backoff.steps(ports.now())))
    ports.metrics?.backoff?.(queue, step, failures.get(queue) ?? 0);
}

function logBackoff(log: ScalerLog, e: BackoffEvent, failures: Map<string, number>): void {
  if (e.kind === 'recovered') {
    log.info('queue back-off over: an agent started healthy', { queue: e.queue, step: e.step });
    return;
  }
  failures.set(e.queue, (failures.get(e.queue) ?? 0) + 1);
  if (!e.held) {
    // Sporadic: healthy starts outnumber failures in the window, so the queue is not held.
    log.warn(
      `queue ${e.queue} not held: agent failed at start (${e.reason}: ${e.message}); ${e.failures} failed, ${e.healthy} started healthy in the window`,
      {
        queue: e.queue,
        reason: e.reason,
        message: e.message,
        pod: e.pod,
        jobName: e.jobName,
        failures: e.failures,
        healthy: e.healthy,
      },
    );
    return;
  }
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

export function queueDecider(
  ports: ScalerPorts,
  settings: ScalerSettings,
  counts: Readonly<Record<string, QueueCounts>>,
  { plan, views }: Pick<Reconciled, 'plan' | 'views'>,
  queue: string,
): QueueDecider {
  const limits = settings.limits[queue] ?? { minAgents: 0, maxAgents: 0 };
  const { pending, running, runningSince, capped } = counts[queue] ?? { pending: 0, running: 0 };
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
  const exited = ports.exited?.count(queue, ports.now()) ?? 0;
  const leaving = ports.exited?.leaving(queue, ports.now()) ?? 0;
  const planned = views.get(queue)?.inFlight ?? 0;
  // Tokens reserved by other invocations since the plan are agents on their way: supply too.
  const observe = (inFlight: number) =>
    decide({
      queue,
      pending,
      running,
      inFlight,
      supply: Math.min(supply + Math.max(0, inFlight - planned), inFlight),
      ...(bound === undefined ? {} : { busyBound: bound }),
      ...limits,
      ...warm,
      ...(exited > 0 ? { exited } : {}),
      ...(leaving > 0 ? { leaving } : {}),
    });
  // A queue backing off creates nothing, or one probe agent; the other queues are not held.
  const gate = ports.backoff?.gate(queue, ports.now());
  const held = (d: Decision): Decision => (gate && d.count > gate.allow ? { ...d, count: gate.allow } : d);
  return { queue, limits, pool, gate, countsCapped: capped === true, decide: (inFlight) => held(observe(inFlight)) };
}

/**
 * The decision's log line and metrics; `reserved` agents were reserved for it; `lag` as the
 * tick's drain measured it (drain.ts DrainReport), absent when the tick did not drain.
 */
export function reportDecision(
  ports: ScalerPorts,
  decider: QueueDecider,
  decision: Decision,
  reserved: number,
  latencyMs: number,
  lag?: { readonly lagMs: number; readonly appliedAgeMs: number },
): void {
  ports.log.info('scaling decision', {
    queue: decider.queue,
    pending: decision.pending,
    running: decision.running,
    inFlight: decision.inFlight,
    supply: decision.supply,
    busyBound: decision.busyBound,
    idle: decision.idle,
    exited: decision.exited ?? 0,
    gone: decision.gone,
    ...(decision.leaving ? { leaving: decision.leaving } : {}),
    ...(lag ? { lagMs: lag.lagMs, appliedAgeMs: lag.appliedAgeMs } : {}),
    minAgents: decision.minAgents,
    maxAgents: decision.maxAgents,
    count: decision.count,
    reason: decision.reason,
    ...(decision.scaleDown ? { scaleDown: decision.scaleDown } : {}),
    reserved,
    ...(decider.gate && decider.gate.step > 0
      ? { backoffStep: decider.gate.step, heldUntil: new Date(decider.gate.holdUntil).toISOString() }
      : {}),
    ...(decider.countsCapped ? { countsCapped: true } : {}),
    ...(decider.pool ?? {}),
  });
  ports.metrics?.decision(lag ? { ...decision, lagMs: lag.lagMs } : decision, reserved, latencyMs);
}
