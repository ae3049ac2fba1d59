/**
 * The scaler's pipeline: one tick, wired from its stages. Orchestration only: the decisions are
 * the pure core's (core/decision.ts, core/limiter.ts, core/ledger.ts); every outside system is
 * reached through a port (ports.ts), so the same code runs against AWS, the emulators, the local
 * stack and the simulator. loop.ts keeps ticking within an invocation.
 *
 * Names: a *dispatch* is the limiter's record of one Kubernetes Job (status intent until its Job
 * is known to exist, then submitted); *tokens* are the limiter's units of agents in flight.
 * A crash between any two stages leaves a dispatch or a counter that the next tick repairs.
 */
import type { Decision } from '../core/decision.js';
import { measureBackoff, measureExited, measureWarmPool, queueDecider, reportDecision } from './decide.js';
import { type DrainReport, drain } from './drain.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';
import { reconcileProviders } from './provider-reconcile.js';
import { reconcile, snapshot } from './reconcile.js';
import { reserve } from './reserve.js';
import { type AgentStops, stopSurplus } from './scale-down.js';
import { type CreatedJob, submitter } from './submit.js';
import type { TickError, TickErrors } from './tick-error.js';
import { syncWarmLearning } from './warm-learning.js';

export interface TickReport {
  readonly drain: DrainReport;
  readonly decisions: readonly Decision[];
  readonly created: readonly CreatedJob[];
  readonly released: number;
  readonly corrected: number;
  /** The failures' messages (TickError.message), as logged. */
  readonly errors: readonly string[];
  /** What failed in this tick, each with its stage, queue and whether the next tick may retry it. */
  readonly failures: readonly TickError[];
  /** False when the tick only drained (see tick's provisionDueAt): no decisions, nothing made. */
  readonly provisioned: boolean;
  /** How long stages 2–6 took (ms, the ports' clock): sizes the next tick's drain (loop.ts). */
  readonly provisionMs?: number;
  /** Per queue whose decision had scaleDown: the surplus agents stopped (scale-down.ts). */
  readonly stops?: readonly AgentStops[];
}

/**
 * One tick: drain (waiting up to waitSeconds for the first event, draining for at most
 * drainBudgetMs, default settings.drainBudgetMs), then provision.
 *
 * With provisionDueAt, a tick that drained events but applied no `scheduled` one provisions only
 * once that time (ports' clock) has come: a `started`, `finished` or `cancelled` event adds no
 * demand of its own (decide() counts a started job's agent busy instead of idle, a finished
 * one's agent stays in the supply until its pod exits, which only the cluster shows), so
 * provisioning at once for each would cost a reconcile and its reads for little; loop.ts looks
 * within busyPollSeconds all the same, for what such events announce (a pod about to exit, a job
 * whose `scheduled` was lost running on an agent counted idle). A tick that drained nothing (its
 * long poll ended empty) always provisions: that is the periodic reconcile.
 */
export async function tick(
  ports: ScalerPorts,
  settings: ScalerSettings,
  options: { waitSeconds: number; deadline: number; drainBudgetMs?: number; provisionDueAt?: number },
): Promise<TickReport> {
  // drain: the queue's events into the ledger (drain.ts).
  const drained = await drain(ports, settings, options.waitSeconds, options.deadline, options.drainBudgetMs);
  const started = ports.now();
  // Every event sent before (now - lag) is applied: exits older than that were no CI job's.
  ports.exited?.drained(started - drained.lagMs);
  const due = options.provisionDueAt === undefined || started >= options.provisionDueAt;
  if (!due && drained.received > 0 && drained.scheduled === 0)
    return {
      drain: drained,
      decisions: [],
      created: [],
      released: 0,
      corrected: 0,
      errors: [],
      failures: [],
      provisioned: false,
    };
  const rest = await provision(ports, settings, { lagMs: drained.lagMs, appliedAgeMs: drained.appliedAgeMs });
  return { drain: drained, ...rest, provisioned: true, provisionMs: ports.now() - started };
}

/**
 * Stages 2–6: reconcile, then per queue decide, reserve and submit, then stop surplus agents.
 * `lag`: what the drain measured (DrainReport lagMs, appliedAgeMs), logged with each decision.
 */
export async function provision(
  ports: ScalerPorts,
  settings: ScalerSettings,
  lag?: { readonly lagMs: number; readonly appliedAgeMs: number },
): Promise<Omit<TickReport, 'drain' | 'provisioned'>> {
  const errors: TickErrors = [];
  // submit: creates a dispatch's one Job; reconcile and reserve hand it their dispatches (submit.ts).
  const submissions = submitter(ports, settings, errors);
  // provider reconcile: jobs whose webhook delivery was lost, once per period (provider-reconcile.ts).
  await reconcileProviders(ports, errors);
  // reconcile, reads: the limiter, THEN our Jobs and pods, beside the ledger's counts (reconcile.ts).
  const seen = await snapshot(ports, settings, errors);
  // decide, back-off: queues whose agents just failed at start hold off (decide.ts).
  measureBackoff(ports, seen.pods);
  // decide, warm pool: measures the start-up of the agents just listed (decide.ts).
  measureWarmPool(ports, seen.clusterJobs);
  // decide, learned warm pool: arrivals learned, saved and loaded (warm-learning.ts).
  await syncWarmLearning(ports, settings);
  // decide, lag: agents that exited since their CI job's `finished` event was applied (decide.ts).
  measureExited(ports, seen.clusterJobs);
  // reconcile: returns tokens, resubmits or releases dispatches, corrects drifted counters (reconcile.ts).
  const reconciled = await reconcile(ports, settings, seen, submissions, errors);
  const decisions = await Promise.all(
    settings.queues.map(async (queue) => {
      const started = performance.now();
      // decide: how many agents the queue needs, from the ledger's counts and our agents (decide.ts).
      const decider = queueDecider(ports, settings, seen.counts, reconciled, queue);
      // reserve: the queue's tokens in one conditional write, then submit the dispatch (reserve.ts).
      const { decision, reserved } = await reserve(ports, settings, decider, reconciled.views.get(queue), submissions);
      reportDecision(ports, decider, decision, reserved, performance.now() - started, lag);
      return { ...decision, count: reserved };
    }),
  );
  // scale-down: a warm pool's surplus idle agents stopped, once the queues got their agents (scale-down.ts).
  const stops = await stopSurplus(ports, settings, decisions, seen.ours);
  const { released, corrected } = reconciled;
  return {
    decisions,
    ...(stops.length > 0 ? { stops } : {}),
    created: submissions.created,
    released,
    corrected,
    errors: errors.map((e) => e.message),
    failures: errors,
  };
}
