/**
 * Stage 3, decide: a queue's observation this tick (the ledger's pending and running counts, the
 * agents our Jobs supply, the busy bound of running CI jobs, the warm pool) and core/decision.ts's
 * decision on it for a given number of agents in flight; then the decision's log line and metrics.
 */
import type { V1Job } from '@kubernetes/client-node';
import { busyBound, type Decision, decide } from '../core/decision.js';
import type { ReconcilePlan } from '../core/limiter.js';
import type { QueueCounts } from '../core/stores.js';
import { type ObservedJob, observedJob, type WarmPoolSize } from '../core/warm-pool.js';
import type { QueueLimits, ScalerPorts, ScalerSettings } from './ports.js';

export interface QueueDecider {
  readonly queue: string;
  readonly limits: QueueLimits;
  /** The warm pool's size and inputs this tick; absent without a warm pool. */
  readonly pool: WarmPoolSize | undefined;
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

export function queueDecider(
  ports: ScalerPorts,
  settings: ScalerSettings,
  counts: Readonly<Record<string, QueueCounts>>,
  plan: ReconcilePlan,
  queue: string,
): QueueDecider {
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
  return {
    queue,
    limits,
    pool,
    decide: (inFlight) =>
      decide({
        queue,
        pending,
        running,
        inFlight,
        supply: Math.min(supply, inFlight),
        ...(bound === undefined ? {} : { busyBound: bound }),
        ...limits,
        ...warm,
      }),
  };
}

/** The decision's log line and metrics; `reserved` agents were reserved for it. */
export function reportDecision(
  ports: ScalerPorts,
  decider: QueueDecider,
  decision: Decision,
  reserved: number,
  latencyMs: number,
): void {
  ports.log.info('scaling decision', {
    queue: decider.queue,
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
    reserved,
    ...(decider.pool ?? {}),
  });
  ports.metrics?.decision(decision, reserved, latencyMs);
}
