/**
 * The scaling policies the simulator compares on the same trace:
 *
 * - ours:            the product's REAL scaler (functions/scaler/loop.ts `run`, with the real
 *                    decision, ledger rules, limiter plan and agent Job builder) invoked every
 *                    schedule period for its budget, on the in-memory ledger and limiter stores,
 *                    an SQS-like events queue fed by the simulated webhooks, and the simulated
 *                    cluster.
 * - long-lived-job:  the approach this product replaces: ONE Job (completions 2147483647) whose
 *                    `parallelism` a periodic job sets to min(MAX, max(MIN, waiting + running)),
 *                    read from the CI API, every schedule period. The Job controller replaces
 *                    every pod that exits (agents exit after one job or when idle) and, when
 *                    parallelism drops, deletes the surplus pods the way Kubernetes ranks them:
 *                    not-ready pods first, then the most recently ready — it cannot tell a busy
 *                    agent from an idle one, so agents ARE killed mid-job; the CI job is
 *                    re-queued (Buildkite's automatic retry on a lost agent) and counted in
 *                    `interrupted`.
 * - job-per-ci-job:  an in-cluster controller (like agent-stack-k8s) that creates one Job
 *                    (parallelism 1, named after the CI job, so a duplicate webhook is a 409) when
 *                    the `scheduled` webhook arrives; its agent acquires exactly that CI job
 *                    (`--acquire-job`) and exits at once if the job was cancelled meanwhile. At MAX
 *                    agents in flight the CI job is held back until an agent ends.
 * - ours-warm:       ours with the adaptive warm pool (WARM_POOL=adaptive, core/warm-pool.ts).
 * - keda-*, agent-stack-k8s, github-aws-runners, arc: the peers, see peers.ts.
 * - oracle:          the lower bound: an agent ready exactly when each CI job is scheduled and gone
 *                    when it ends; wait 0, provisioned = used, no cap. Computed, not simulated.
 */

import type { V1Job } from '@kubernetes/client-node';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { buildAgentJob, dispatchIdOf, jobNameFor, queueOf } from '../../functions/core/agent-job.js';
import type { ArrivalModelOptions } from '../../functions/core/arrival-model.js';
import { ExitedAgents } from '../../functions/core/decision.js';
import type { LedgerStore, LimiterStore } from '../../functions/core/stores.js';
import { type WarmPoolOptions, WarmPoolTracker } from '../../functions/core/warm-pool.js';
import { run } from '../../functions/scaler/loop.js';
import type { ScalerLog, ScalerPorts, ScalerSettings } from '../../functions/scaler/ports.js';
import { InMemoryLedgerStore } from '../fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../fakes/memory/limiter-store.js';
import type { VirtualClock } from './clock.js';
import { type ApiCounter, SimCluster } from './cluster.js';
import { type HistoryDay, trainedModel } from './history.js';
import { SimEventQueue } from './queue.js';
import type { AgentLifecycle, Pod, PodOwner, World } from './world.js';

export const POLICIES = [
  'ours',
  'ours-warm',
  'keda-default',
  'keda-accurate',
  'keda-eager',
  'agent-stack-k8s',
  'github-aws-runners',
  'arc',
  'long-lived-job',
  'job-per-ci-job',
  'oracle',
] as const;
export type PolicyName = (typeof POLICIES)[number];

export interface PolicyParams {
  readonly minAgents: number;
  readonly maxAgents: number;
  /** EventBridge schedule period (ours) / parallelism update period (long-lived-job). */
  readonly scheduleSeconds: number;
  /** How long one scaler invocation keeps ticking (SCALER_BUDGET_SECONDS). */
  readonly budgetSeconds: number;
  /** Long-poll wait between ticks (SCALER_POLL_SECONDS). */
  readonly pollSeconds: number;
  /** Virtual latency of each AWS request (SQS, DynamoDB). */
  readonly awsLatencyMs: number;
  /** Virtual latency of each Kubernetes API call. */
  readonly kubeLatencyMs: number;
  readonly visibilityTimeoutSeconds: number;
  readonly intentLeaseSeconds: number;
  readonly ttlSecondsAfterFinished: number;
  readonly activeDeadlineSeconds: number;
  /** ours: the scaler's log (default: silent). */
  readonly scalerLog?: ScalerLog;
  /** ours-warm: options of the adaptive warm pool (default: the product's). */
  readonly warmPool?: WarmPoolOptions;
  /**
   * ours-warm: the past days its arrival model learns from (history.ts; never the scored day).
   * Empty or absent: no learned model, the pool follows the recent arrivals only.
   */
  readonly warmHistory?: readonly HistoryDay[];
  /** ours-warm: options of the learned arrival model (default: the product's). */
  readonly warmModel?: ArrivalModelOptions;
  /**
   * ours-warm with a learned model: the scaler stops surplus agents (decision.scaleDown; default
   * true), as the product does (scaler/scale-down.ts on SimCluster's listAgentPods and deletePod:
   * the newest Running and Ready pods of the queue). False: the
   * decision is only logged and agents leave on their idle timeout (--idle-timeout-seconds).
   */
  readonly warmScaleDown?: boolean;
  /** github-aws-runners: pool_config size topped up every 5 minutes (default 0: no pool). */
  readonly githubAwsPoolSize?: number;
}

export interface Counters extends ApiCounter {
  aws: Record<string, number>;
  lambdaInvocations: number;
  jobsCreated: number;
}

export interface PolicyRun {
  /** The counters as of now (API calls, requests, Jobs created). */
  readonly counters: () => Counters;
  /** Errors the policy reported (the scaler's tick errors). */
  readonly errors: string[];
  /** ours: the ledger the scaler wrote (inspection). */
  readonly ledger?: InMemoryLedgerStore;
}

export const SIM_TEMPLATE: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'template' },
  spec: {
    template: {
      spec: {
        restartPolicy: 'Never',
        containers: [
          {
            name: 'agent',
            image: 'buildkite/agent:3',
            args: [
              'start',
              '--disconnect-after-job',
              '--disconnect-after-idle-timeout=60',
              '--tags',
              'queue=$(CI_AUTOSCALER_QUEUE)',
            ],
          },
        ],
      },
    },
  },
};

/** ours-warm's agents: one job each, no idle timeout (stopped by the scaler when surplus). */
const WARM_AGENT: AgentLifecycle = { ephemeral: true, idleTimeout: false };

const silentLog: ScalerLog = { debug() {}, info() {}, warn() {}, error() {} };

/** The log with the virtual time (seconds since the start) in every entry. */
function timed(log: ScalerLog, world: World): ScalerLog {
  const at = (f: ScalerLog['info']) => (message: string, extra?: Record<string, unknown>) =>
    f(message, { t: world.nowSeconds, ...extra });
  return {
    debug: at(log.debug.bind(log)),
    info: at(log.info.bind(log)),
    warn: at(log.warn.bind(log)),
    error: at(log.error.bind(log)),
  };
}

function add(table: Record<string, number>, key: string, n = 1): void {
  table[key] = (table[key] ?? 0) + n;
}

/** The real in-memory stores, with each call counted as the DynamoDB requests it would make and delayed by the latency. */
function countedLedger(
  inner: InMemoryLedgerStore,
  clock: VirtualClock,
  counters: Counters,
  latencyMs: number,
): LedgerStore {
  return {
    async apply(events, now) {
      const before = inner.writes;
      const out = await inner.apply(events, now);
      add(counters.aws, 'dynamodb.UpdateItem', inner.writes - before);
      await clock.sleep(latencyMs);
      return out;
    },
    async counts(queues, now, options) {
      // One GSI query per queue and state (scheduled, started).
      add(counters.aws, 'dynamodb.Query', 2 * new Set(queues).size);
      await clock.sleep(latencyMs);
      return inner.counts(queues, now, options);
    },
  };
}

function countedLimiter(
  inner: InMemoryLimiterStore,
  clock: VirtualClock,
  counters: Counters,
  latencyMs: number,
): LimiterStore {
  const wrap =
    <A extends unknown[], R>(name: string, requests: number, f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      add(counters.aws, name, requests);
      await clock.sleep(latencyMs);
      return f(...a);
    };
  return {
    // Two queries: the LIMITER items and the DISPATCH items.
    snapshot: wrap('dynamodb.Query', 2, () => inner.snapshot()),
    reserve: wrap('dynamodb.TransactWriteItems', 1, (r) => inner.reserve(r)),
    markSubmitted: wrap('dynamodb.UpdateItem', 1, (d) => inner.markSubmitted(d)),
    beginCreate: wrap('dynamodb.UpdateItem', 1, (d, u) => inner.beginCreate(d, u)),
    settleCreate: wrap('dynamodb.UpdateItem', 1, (d, l) => inner.settleCreate(d, l)),
    setTokens: wrap('dynamodb.UpdateItem', 1, (d, t) => inner.setTokens(d, t)),
    release: wrap('dynamodb.DeleteItem', 1, (d) => inner.release(d)),
    correct: wrap('dynamodb.UpdateItem', 1, (r) => inner.correct(r)),
  };
}

function delayedCluster(
  cluster: SimCluster,
  clock: VirtualClock,
  latencyMs: number,
  stops: boolean,
): ScalerPorts['cluster'] {
  return {
    async listAgentJobs() {
      await clock.sleep(latencyMs);
      return cluster.listAgentJobs();
    },
    async createJob(job) {
      await clock.sleep(latencyMs);
      return cluster.createJob(job);
    },
    // What the scaler's stop of surplus agents calls (scaler/scale-down.ts), when it stops them.
    ...(stops
      ? {
          async listAgentPods(query) {
            await clock.sleep(latencyMs);
            return cluster.listAgentPods(query);
          },
          async deletePod(pod, gracePeriodSeconds) {
            await clock.sleep(latencyMs);
            return cluster.deletePod(pod, gracePeriodSeconds);
          },
        }
      : {}),
  };
}

export function newCounters(): Counters {
  return { kube: {}, aws: {}, lambdaInvocations: 0, jobsCreated: 0 };
}

/** ours: the real scaler. */
export function startOurs(
  world: World,
  clock: VirtualClock,
  queues: readonly string[],
  /** podStartupSeconds: the start-up the training days' agents took (the world's; default 15 s). */
  p: PolicyParams & { readonly podStartupSeconds?: number },
  warm = false,
): PolicyRun & {
  cluster: SimCluster;
  queue: SimEventQueue;
  ledger: InMemoryLedgerStore;
  limiter: InMemoryLimiterStore;
} {
  const counters = newCounters();
  const errors: string[] = [];
  const queue = new SimEventQueue(clock, {
    visibilityTimeoutSeconds: p.visibilityTimeoutSeconds,
    latencyMs: p.awsLatencyMs,
  });
  world.sink = (event) => queue.send(event);
  const history = warm ? (p.warmHistory ?? []) : [];
  const learned =
    history.length > 0
      ? trainedModel(history, (p.podStartupSeconds ?? 15) + (p.warmPool?.reactionSeconds ?? 3), p.warmModel)
      : undefined;
  // ours-warm with a learned model keeps its agents until the pool's target drops: no idle
  // timeout, the scaler stops surplus agents (decision.ts scaleDown) instead. Without
  // history (a replay) the pool follows the recent arrivals, agents keep their idle timeout, and
  // the scaler stops the surplus too, as the product does with WARM_POOL=adaptive.
  // The scaler stops surplus agents whenever a warm pool is on (scaler/scale-down.ts).
  const stops = warm && p.warmScaleDown !== false;
  const cluster = new SimCluster(
    clock,
    world,
    counters,
    (job) => queueOf(job),
    undefined,
    learned && stops ? WARM_AGENT : undefined,
  );
  const ledger = new InMemoryLedgerStore();
  const limiter = new InMemoryLimiterStore();
  const ports: ScalerPorts = {
    events: queue,
    ledger: countedLedger(ledger, clock, counters, p.awsLatencyMs),
    limiter: countedLimiter(limiter, clock, counters, p.awsLatencyMs),
    cluster: delayedCluster(cluster, clock, p.kubeLatencyMs, stops),
    jobs: jobFactory({
      namespace: 'ci-agents',
      ttlSecondsAfterFinished: p.ttlSecondsAfterFinished,
      activeDeadlineSeconds: p.activeDeadlineSeconds,
      templateFor: () => SIM_TEMPLATE,
    }),
    log: p.scalerLog ? timed(p.scalerLog, world) : silentLog,
    now: clock.epochNow,
    sleep: (ms) => clock.sleep(ms),
    ...(warm
      ? {
          warmPool: new WarmPoolTracker(p.warmPool, learned),
        }
      : {}),
    // As deployed (scaler/wiring.ts): agents that exited before their finished event was applied.
    exited: new ExitedAgents(),
  };
  const settings: ScalerSettings = {
    queues,
    limits: Object.fromEntries(queues.map((q) => [q, { minAgents: p.minAgents, maxAgents: p.maxAgents }])),
    intentLeaseMs: p.intentLeaseSeconds * 1000,
    // The scaler stops surplus agents with the Job's deadline as their grace (scaler/wiring.ts).
    ...(stops ? { stopGraceSeconds: p.activeDeadlineSeconds } : {}),
  };
  const invoke = () => {
    counters.lambdaInvocations++;
    run(ports, settings, { budgetMs: p.budgetSeconds * 1000, pollSeconds: p.pollSeconds })
      .then((reports) => {
        for (const r of reports) errors.push(...r.errors);
      })
      .catch((e: unknown) => errors.push(`invocation failed: ${e instanceof Error ? e.message : String(e)}`));
    clock.after(p.scheduleSeconds * 1000, invoke);
  };
  clock.at(0, invoke);
  const snapshot = (): Counters => ({
    ...counters,
    kube: { ...counters.kube },
    aws: {
      'sqs.SendMessage': queue.counters.send,
      'sqs.ReceiveMessage': queue.counters.receive,
      'sqs.DeleteMessageBatch': queue.counters.deleteBatch,
      ...counters.aws,
    },
    jobsCreated: cluster.created,
  });
  return { counters: snapshot, errors, cluster, queue, ledger, limiter };
}

/**
 * job-per-ci-job: one Job per CI job, created when its `scheduled` webhook arrives; or, with
 * `pollSeconds` (agent-stack-k8s), when a poll of the CI's scheduled jobs first sees it.
 */
export function startJobPerCiJob(
  world: World,
  clock: VirtualClock,
  p: PolicyParams,
  poll?: { readonly pollSeconds: number; readonly queues: readonly string[] },
): PolicyRun {
  const counters = newCounters();
  const byId = new Map(world.jobs.map((j) => [j.trace.id, j]));
  const cluster = new SimCluster(
    clock,
    world,
    counters,
    (job) => queueOf(job),
    (job) => {
      const dispatchId = dispatchIdOf(job);
      return dispatchId?.startsWith('ci-') ? byId.get(dispatchId.slice(3)) : undefined;
    },
  );
  const held = new Map<string, string[]>();
  const seen = new Set<string>();

  const createdIds = new Set<string>();
  const create = async (queue: string, jobId: string, fresh = true) => {
    createdIds.add(jobId);
    if (fresh) creating.set(queue, (creating.get(queue) ?? 0) + 1);
    await clock.sleep(p.kubeLatencyMs);
    if (fresh) creating.set(queue, (creating.get(queue) ?? 1) - 1);
    const name = jobNameFor(queue, `ci-${jobId}`);
    await cluster.createJob(
      buildAgentJob(SIM_TEMPLATE, {
        namespace: 'ci-agents',
        queue,
        dispatchId: `ci-${jobId}`,
        jobName: name,
        count: 1,
        ttlSecondsAfterFinished: p.ttlSecondsAfterFinished,
        activeDeadlineSeconds: p.activeDeadlineSeconds,
      }),
    );
  };
  // Creates decided but not yet visible as pods count against MAX too.
  const creating = new Map<string, number>();
  const live = (queue: string) => (world.inFlightByQueue.get(queue) ?? 0) + (creating.get(queue) ?? 0);
  const release = (queue: string) => {
    const list = held.get(queue);
    while (list && live(queue) < p.maxAgents) {
      const id = list.shift();
      if (id === undefined) break;
      const job = byId.get(id);
      // The controller asks the CI API and skips a job no longer waiting.
      if (job && job.state === 'waiting') void create(queue, id);
    }
  };
  if (poll) {
    // The monitor's poll: every scheduled job not yet handed to the limiter is, in order; the
    // limiter creates its Job when a max-in-flight token is free, else holds it (FIFO).
    const tick = () => {
      clock.after(poll.pollSeconds * 1000, tick);
      for (const queue of poll.queues)
        for (const job of world.waitingJobs(queue)) {
          if (seen.has(job.trace.id)) continue;
          seen.add(job.trace.id);
          held.set(queue, [...(held.get(queue) ?? []), job.trace.id]);
        }
      for (const queue of poll.queues) release(queue);
    };
    clock.at(0, tick);
  }
  world.sink = (event) => {
    if (poll || event.kind !== 'scheduled') return;
    if (seen.has(event.jobId)) {
      // A duplicate: its create answers 409; a CI job held back at MAX stays held.
      if (createdIds.has(event.jobId)) void create(event.queue, event.jobId, false);
      return;
    }
    seen.add(event.jobId);
    if (live(event.queue) < p.maxAgents) void create(event.queue, event.jobId);
    else held.set(event.queue, [...(held.get(event.queue) ?? []), event.jobId]);
  };
  const origEnd = cluster.onPodEnd.bind(cluster);
  cluster.onPodEnd = (pod: Pod) => {
    origEnd(pod);
    release(pod.queue);
  };
  return { counters: () => ({ ...counters, kube: { ...counters.kube }, jobsCreated: cluster.created }), errors: [] };
}

/** long-lived-job: one Job per queue whose parallelism is set each period. */
export function startLongLivedJob(
  world: World,
  clock: VirtualClock,
  queues: readonly string[],
  p: PolicyParams,
): PolicyRun {
  const counters = newCounters();
  for (const queue of queues) {
    let parallelism = 0;
    const pods: Pod[] = [];
    const owner: PodOwner = {
      onPodEnd: (pod) => {
        const i = pods.indexOf(pod);
        if (i < 0) return; // deleted by the scale-down below
        pods.splice(i, 1);
        // The Job controller keeps `parallelism` pods active (completions never reached).
        sync();
      },
    };
    const sync = () => {
      while (pods.length < parallelism) pods.push(world.startPod(queue, owner));
      if (pods.length > parallelism) {
        // Kubernetes' deletion ranking (controller.ActivePods): not-ready before ready, then the
        // most recently ready first. Busy or idle is invisible to it.
        const ranked = [...pods].sort((a, b) => {
          if (a.readyAt === undefined && b.readyAt === undefined) return b.createdAt - a.createdAt;
          if (a.readyAt === undefined) return -1;
          if (b.readyAt === undefined) return 1;
          return b.readyAt - a.readyAt;
        });
        for (const pod of ranked.slice(0, pods.length - parallelism)) {
          pods.splice(pods.indexOf(pod), 1);
          world.killPod(pod);
        }
      }
    };
    let created = false;
    const period = async () => {
      clock.after(p.scheduleSeconds * 1000, () => void period());
      const { waiting, running } = world.ciCounts(queue);
      const desired = Math.min(p.maxAgents, Math.max(p.minAgents, waiting + running));
      if (!created) {
        // The Job is created with the first parallelism.
        created = true;
        counters.jobsCreated++;
        add(counters.kube, 'create');
        await clock.sleep(p.kubeLatencyMs);
        parallelism = desired;
        sync();
        return;
      }
      add(counters.kube, 'get');
      await clock.sleep(p.kubeLatencyMs);
      if (desired !== parallelism) {
        add(counters.kube, 'patch');
        await clock.sleep(p.kubeLatencyMs);
        parallelism = desired;
        sync();
      }
    };
    clock.at(0, () => void period());
  }
  return { counters: () => ({ ...counters, kube: { ...counters.kube } }), errors: [] };
}
