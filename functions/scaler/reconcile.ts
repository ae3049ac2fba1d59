/**
 * Stage 2, reconcile: reads the limiter (strongly consistent), THEN lists our Jobs in the cluster
 * (so a dispatch recorded as submitted before the read is visible in the list), beside the
 * ledger's counts; then carries out core/limiter.ts's plan: returns the tokens of finished or
 * vanished Jobs (once no create of theirs can land), resubmits dispatches still in status intent
 * that never became a Job, releases expired ones, lets a provider do its housekeeping (ports.ts
 * DispatchHooks), and corrects a drifted counter.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { countCap } from '../core/decision.js';
import {
  type ClusterJob,
  type DispatchAction,
  intentCreateGraceMs,
  planReconcile,
  type ReconcilePlan,
} from '../core/limiter.js';
import type { LimiterSnapshot, QueueCounts } from '../core/stores.js';
import { describeError } from '../shared/errors.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';
import type { Submitter } from './submit.js';

/** What a tick read, in the order that makes it safe. */
export interface TickSnapshot {
  readonly limiter: LimiterSnapshot;
  /** The clock read before the cluster's list: a create that could land only before it is listed. */
  readonly listedAt: number;
  readonly counts: Readonly<Record<string, QueueCounts>>;
  /** Every Job of our label selector, ours or another deployment's. */
  readonly clusterJobs: readonly V1Job[];
  /** Our Jobs, read back. */
  readonly ours: readonly ClusterJob[];
  /** Our agent pods, listed after the Jobs when back-off or housekeeping needs them. */
  readonly pods: readonly V1Pod[] | undefined;
}

/** The limiter's state of one queue as reconciled, where reserve starts from. */
export interface QueueView {
  inFlight: number;
  version: number;
  /** False when a write of this tick's reconcile failed: the counter is left as is. */
  settled: boolean;
}

export interface Reconciled {
  readonly plan: ReconcilePlan;
  readonly views: ReadonlyMap<string, QueueView>;
  /** Tokens returned. */
  readonly released: number;
  /** Counters corrected to the cluster. */
  readonly corrected: number;
}

/**
 * How far the ledger counts each queue: beyond MAX_AGENTS + 1 pending jobs (or running ones) the
 * decision is the same (core/decision.ts countCap), so the tick's reads stop there however large
 * the backlog; at least 1000, so the Pending metric stays exact for any ordinary backlog.
 */
function countCaps(settings: ScalerSettings): Record<string, number> {
  return Object.fromEntries(
    settings.queues.map((q) => [q, Math.max(1000, countCap(settings.limits[q]?.maxAgents ?? 0))]),
  );
}

/** Reads the limiter's snapshot BEFORE the cluster's list (see core/limiter.ts), and the ledger's counts. */
export async function snapshot(ports: ScalerPorts, settings: ScalerSettings, errors: string[]): Promise<TickSnapshot> {
  const { limiter, ledger, cluster, jobs } = ports;
  const limiterSnapshot = await limiter.snapshot();
  const listedAt = ports.now();
  const [counts, clusterJobs] = await Promise.all([
    ledger.counts(settings.queues, new Date(listedAt), { cap: countCaps(settings) }),
    cluster.listAgentJobs(),
  ]);
  const ours = clusterJobs.map((j) => jobs.describe(j)).filter((j): j is ClusterJob => j !== undefined);
  // Listed after the Jobs: a failed index the Job list shows has its pod in this list.
  const pods = await listPods(ports, errors);
  return { limiter: limiterSnapshot, listedAt, counts, clusterJobs, ours, pods };
}

/** The agent pods, when back-off or a hook needs them. Undefined if not listed. */
async function listPods(ports: ScalerPorts, errors: string[]): Promise<V1Pod[] | undefined> {
  const { cluster, backoff } = ports;
  if (!cluster.listAgentPods || (!backoff && !ports.hooks?.housekeeping)) return undefined;
  try {
    return await cluster.listAgentPods();
  } catch (e) {
    // Without the pods the back-off keeps its state from the last tick.
    errors.push(`list pods: ${describeError(e)}`);
    return undefined;
  }
}

/** Carries out the reconcile plan of the snapshot; failures go to `errors`. */
export async function reconcile(
  ports: ScalerPorts,
  settings: ScalerSettings,
  seen: TickSnapshot,
  submitter: Submitter,
  errors: string[],
): Promise<Reconciled> {
  const { limiter, log } = ports;
  const plan = planReconcile({
    limiters: seen.limiter.limiters,
    dispatches: seen.limiter.dispatches,
    jobs: seen.ours,
    now: seen.listedAt,
    createGraceMs: intentCreateGraceMs(settings.intentLeaseMs),
    queues: settings.queues,
  });

  const views = new Map<string, QueueView>();
  for (const [queue, inFlight] of Object.entries(plan.inFlight)) {
    views.set(queue, { inFlight, version: plan.versions[queue] ?? 0, settled: true });
  }

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
          await submitter.resubmit(a.dispatch);
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
      .housekeeping({
        jobs: seen.ours,
        dispatches: seen.limiter.dispatches,
        ...(seen.pods ? { pods: seen.pods } : {}),
        now: ports.now(),
      })
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

  return { plan, views, released, corrected };
}
