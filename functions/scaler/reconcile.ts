/**
 * Stage 2, reconcile: reads the limiter (strongly consistent), THEN lists our Jobs in the cluster
 * (so a dispatch recorded as submitted before the read is visible in the list), beside the
 * ledger's counts; then carries out core/limiter.ts's plan: returns the tokens of finished or
 * vanished Jobs (once no create of theirs can land), resubmits dispatches still in status intent
 * that never became a Job, releases expired ones, lets a provider do its housekeeping (ports.ts
 * DispatchHooks), and corrects a drifted counter.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import {
  type JobStatusView,
  jobStatusView,
  type ObservedScope,
  POD_SAMPLE_INDEXES,
  type PodSelection,
} from '../core/backoff.js';
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
import type { PodQuery, ScalerPorts, ScalerSettings } from './ports.js';
import { allHooks, hooksFor, podsToSweep } from './provider-ports.js';
import type { Submitter } from './submit.js';
import { type TickErrors, tickError } from './tick-error.js';

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
  /** The agent pods of the Jobs back-off or housekeeping had to look at, listed after the Jobs. */
  readonly pods: PodLook | undefined;
}

/** The pods of the Jobs looked at this tick (ObservedScope), every Job listed beside. */
export interface PodLook extends ObservedScope {
  /** Every pod listed, once. */
  readonly pods: readonly V1Pod[];
  /** All the pods of the Jobs housekeeping asked for, when it asked. */
  readonly sweep?: readonly V1Pod[];
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
export async function snapshot(
  ports: ScalerPorts,
  settings: ScalerSettings,
  errors: TickErrors,
): Promise<TickSnapshot> {
  const { limiter, ledger, cluster, jobs } = ports;
  const limiterSnapshot = await limiter.snapshot();
  const listedAt = ports.now();
  const [counts, clusterJobs] = await Promise.all([
    ledger.counts(settings.queues, new Date(listedAt), { cap: countCaps(settings) }),
    cluster.listAgentJobs(),
  ]);
  const described = clusterJobs.map((j) => jobs.describe(j)).filter((j): j is ClusterJob => j !== undefined);
  // Listed after the Jobs: a failed index the Job list shows has its pod in this list.
  const pods = await lookAtPods(ports, clusterJobs, described, listedAt, errors);
  const abandoned = await abandonRefused(ports, described, pods, errors);
  // An abandoned Job has no agent and never will: its tokens are returned by this reconcile.
  const ours =
    abandoned.size === 0 ? described : described.map((j) => (abandoned.has(j.jobName) ? { ...j, live: 0 } : j));
  return { limiter: limiterSnapshot, listedAt, counts, clusterJobs, ours, pods };
}

/**
 * Our Jobs whose pods the API server refuses to create (FailedCreate Events; the back-off holds
 * their queue): each is deleted, so the Job controller stops retrying and no agent of it can
 * appear later behind the limiter's back once a quota is raised. The names of those deleted
 * (or already gone); a Job whose delete failed keeps its tokens and is tried again next tick.
 */
async function abandonRefused(
  ports: ScalerPorts,
  ours: readonly ClusterJob[],
  look: PodLook | undefined,
  errors: TickErrors,
): Promise<Set<string>> {
  const abandoned = new Set<string>();
  const refused = look?.createFailures;
  const deleteJob = ports.cluster.deleteJob?.bind(ports.cluster);
  if (!refused || refused.size === 0 || !deleteJob) return abandoned;
  await Promise.all(
    ours
      .filter((j) => refused.has(j.jobName))
      .map(async (j) => {
        try {
          await deleteJob(j.jobName);
          abandoned.add(j.jobName);
          ports.log.warn('agent Job deleted: the API server refuses its pods', {
            queue: j.queue,
            jobName: j.jobName,
            agents: j.live,
            error: refused.get(j.jobName)?.message,
          });
        } catch (e) {
          errors.push(tickError('reconcile', `delete ${j.jobName}`, e, { queue: j.queue }));
        }
      }),
  );
  return abandoned;
}

/**
 * The pods of the Jobs back-off selects (core/backoff.ts: the Failed pods of Jobs with a new
 * failure; a sample of the pods of Jobs not ready past a grace, or of a queue backing off) and
 * all those of the Jobs housekeeping asks for on a sweep: the pods listed follow what is
 * suspicious, not the number of agents, and a healthy tick lists none. Undefined when neither
 * needs pods or a list failed.
 */
async function lookAtPods(
  ports: ScalerPorts,
  clusterJobs: readonly V1Job[],
  ours: readonly ClusterJob[],
  now: number,
  errors: TickErrors,
): Promise<PodLook | undefined> {
  const { cluster, backoff } = ports;
  const listAgentPods = cluster.listAgentPods?.bind(cluster);
  if (!listAgentPods) return undefined;
  const jobs = backoff ? clusterJobs.map(jobStatusView).filter((j): j is JobStatusView => j !== undefined) : [];
  const oursByName = new Set(ours.map((j) => j.jobName));
  const forSweep = podsToSweep(ports, {
    jobs: clusterJobs.filter((j) => oursByName.has(j.metadata?.name ?? '')),
    now,
  });
  if (!backoff && !forSweep) return undefined;
  const wanted: PodSelection = backoff?.select(jobs, now) ?? { failed: [], sample: [] };
  const list = (query: PodQuery) => (query.jobNames.length > 0 ? listAgentPods(query) : Promise.resolve([]));
  const unstarted = wanted.unstarted ?? [];
  const listCreateFailures = cluster.listCreateFailures?.bind(cluster);
  try {
    const [failed, sample, sweep, refused] = await Promise.all([
      list({ jobNames: wanted.failed, phase: 'Failed' }),
      list({ jobNames: wanted.sample, firstIndexes: POD_SAMPLE_INDEXES }),
      list({ jobNames: forSweep ?? [] }),
      unstarted.length > 0 && listCreateFailures ? listCreateFailures(unstarted) : Promise.resolve([]),
    ]);
    const byName = new Map<string, V1Pod>();
    for (const p of [...failed, ...sample, ...sweep]) byName.set(p.metadata?.name ?? '', p);
    return {
      pods: [...byName.values()],
      ...(forSweep ? { sweep: sweep } : {}),
      jobs,
      failed: new Set(wanted.failed),
      sample: new Set(wanted.sample),
      ...(refused.length > 0
        ? { createFailures: new Map(refused.map((f) => [f.jobName, { message: f.message, at: f.at }])) }
        : {}),
    };
  } catch (e) {
    // Without the pods the back-off keeps its state from the last tick, and looks again next tick.
    errors.push(tickError('reconcile', 'list pods', e));
    return undefined;
  }
}

/** What carrying out one reconcile plan shares between its steps. */
interface Carrying {
  readonly ports: ScalerPorts;
  readonly submitter: Submitter;
  readonly views: Map<string, QueueView>;
  readonly errors: TickErrors;
  /** Tokens returned so far. */
  released: number;
}

/** Each queue's limiter state as the plan sees it, settled until a write fails. */
function planViews(plan: ReconcilePlan): Map<string, QueueView> {
  const views = new Map<string, QueueView>();
  for (const [queue, inFlight] of Object.entries(plan.inFlight)) {
    views.set(queue, { inFlight, version: plan.versions[queue] ?? 0, settled: true });
  }
  return views;
}

/** A write of this queue failed or was refused: its counter is left as is this tick. */
function unsettle(c: Carrying, a: DispatchAction): void {
  const view = c.views.get(a.dispatch.queue);
  if (view) view.settled = false;
}

/** Records a dispatch as submitted (completing its provider step first) and sets its tokens. */
async function update(c: Carrying, a: DispatchAction & { kind: 'update' }): Promise<void> {
  const { ports } = c;
  if (a.markSubmitted) {
    // Before markSubmitted: a Job whose provider step (its Secret) is missing is completed here.
    await hooksFor(ports, a.dispatch.queue)?.afterCreate(a.dispatch);
    await ports.limiter.markSubmitted(a.dispatch);
  }
  // Refused when a create was fenced since the snapshot: the counter is left as is.
  if (a.tokens !== a.dispatch.tokens && !(await ports.limiter.setTokens(a.dispatch, a.tokens))) unsettle(c, a);
}

/** Returns a dispatch's tokens. */
async function release(c: Carrying, a: DispatchAction & { kind: 'release' }): Promise<void> {
  // Refused when a create was fenced since the snapshot: its tokens stay.
  if (!(await c.ports.limiter.release(a.dispatch))) {
    unsettle(c, a);
    return;
  }
  c.released += a.dispatch.tokens;
  c.ports.log.info('tokens returned', {
    queue: a.dispatch.queue,
    jobName: a.dispatch.jobName,
    tokens: a.dispatch.tokens,
    why: a.why,
  });
}

/** Carries out one action of the plan; a failure goes to `errors` and unsettles its queue. */
async function carry(c: Carrying, a: DispatchAction): Promise<void> {
  try {
    switch (a.kind) {
      case 'keep':
        return;
      case 'create':
        await c.submitter.resubmit(a.dispatch);
        return;
      case 'update':
        await update(c, a);
        return;
      case 'release':
        await release(c, a);
        return;
    }
  } catch (e) {
    c.errors.push(tickError('reconcile', `reconcile ${a.dispatch.jobName}`, e, { queue: a.dispatch.queue }));
    unsettle(c, a);
  }
}

/** Lets the provider do its housekeeping (ports.ts DispatchHooks); a failure is only logged. */
async function housekeeping(ports: ScalerPorts, seen: TickSnapshot): Promise<void> {
  const view = {
    jobs: seen.ours,
    dispatches: seen.limiter.dispatches,
    ...(seen.pods?.sweep ? { pods: seen.pods.sweep } : {}),
    now: ports.now(),
  };
  await Promise.all(
    allHooks(ports).map((hooks) =>
      hooks
        .housekeeping?.(view)
        .catch((e: unknown) => ports.log.warn('housekeeping failed; tried again later', { error: describeError(e) })),
    ),
  );
}

/** Corrects one drifted counter of a settled queue; true when corrected. */
async function correct(c: Carrying, plan: ReconcilePlan, fix: ReconcilePlan['corrections'][number]): Promise<boolean> {
  const view = c.views.get(fix.queue);
  if (!view?.settled) return false;
  const ok = await c.ports.limiter
    .correct({ queue: fix.queue, expectedVersion: fix.expectedVersion, inFlight: fix.to })
    .catch((e: unknown) => {
      c.errors.push(tickError('reconcile', `correct ${fix.queue}`, e, { queue: fix.queue }));
      return false;
    });
  if (!ok) {
    view.settled = false;
    return false;
  }
  view.version = fix.expectedVersion + 1;
  const orphans = plan.orphans[fix.queue] ?? 0;
  c.ports.log.info('limiter counter corrected to the cluster', {
    queue: fix.queue,
    from: fix.from,
    to: fix.to,
    orphanAgents: orphans,
  });
  return true;
}

/** Carries out the reconcile plan of the snapshot; failures go to `errors`. */
export async function reconcile(
  ports: ScalerPorts,
  settings: ScalerSettings,
  seen: TickSnapshot,
  submitter: Submitter,
  errors: TickErrors,
): Promise<Reconciled> {
  const plan = planReconcile({
    limiters: seen.limiter.limiters,
    dispatches: seen.limiter.dispatches,
    jobs: seen.ours,
    now: seen.listedAt,
    createGraceMs: intentCreateGraceMs(settings.intentLeaseMs),
    queues: settings.queues,
  });
  const c: Carrying = { ports, submitter, views: planViews(plan), errors, released: 0 };
  await Promise.all(plan.actions.map((a) => carry(c, a)));
  await housekeeping(ports, seen);
  let corrected = 0;
  await Promise.all(
    plan.corrections.map(async (fix) => {
      if (await correct(c, plan, fix)) corrected++;
    }),
  );
  return { plan, views: c.views, released: c.released, corrected };
}
