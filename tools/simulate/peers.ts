/**
 * The peers: how other projects scale CI agents, reproduced from their source (each function
 * cites the file it follows) and run on the simulator's World next to ours. Caps: each peer's own
 * cap (KEDA maxReplicaCount, agent-stack-k8s max-in-flight, github-aws-runners
 * runners_maximum_count, ARC maxRunners) is set to the simulation's MAX_AGENTS and its floor
 * (minReplicaCount, minRunners) to MIN_AGENTS, so every policy runs with the same limits; the
 * timings (polling intervals, delays, scale-down schedule) are each project's defaults.
 *
 * Sources, as read for this file:
 * - kedacore/keda@8b4f083: pkg/scaling/executor/scale_jobs.go, pkg/scaling/scaledjob/metrics.go,
 *   apis/keda/v1alpha1/withtriggers_types.go (defaultPollingInterval = 30),
 *   apis/keda/v1alpha1/scaledjob_types.go (maxReplicaCount 100, minReplicaCount 0).
 * - buildkite/agent-stack-k8s@a5d56d1: internal/controller/monitor/monitor.go (poll-interval,
 *   default and minimum 1 s), internal/controller/limiter/limiter.go (max-in-flight token bucket,
 *   a token back when a Job finishes), charts/agent-stack-k8s/values.schema.json (max-in-flight
 *   default 25).
 * - github-aws-runners/terraform-aws-github-runner@4475534: variables.tf (delay_webhook_event 30,
 *   scale_down_schedule_expression "cron(* /5 * * * ? *)", enable_ephemeral_runners false,
 *   pool_config), modules/runners/scale-down.tf (minimum running time: linux 5 min),
 *   lambdas/functions/control-plane/src/scale-runners/scale-up.ts (queued check, newRunners),
 *   .../scale-runners/scale-down.ts (runnerMinimumTimeExceeded, idle runners only),
 *   .../pool/pool.ts (top-up to the pool size, clamped to the maximum).
 * - actions/actions-runner-controller@2ee6b3b: cmd/ghalistener/scaler/scaler.go
 *   (targetRunnerCount := min(MinRunners+count, MaxRunners), count = TotalAssignedJobs; the patch
 *   ID of setDesiredWorkerState), controllers/actions.github.com/ephemeralrunnerset_controller.go
 *   (scale up per patch, scale down only on patch ID 0, deleteIdleEphemeralRunners).
 * - actions/scaleset@6ce0259: listener/listener.go (Run: the message session, an empty long poll
 *   handled with the latest statistics), README.md (GetMessage long-polls about 50 s).
 */
import type { VirtualClock } from './clock.js';
import { newCounters, type PolicyParams, type PolicyRun, startJobPerCiJob } from './policies.js';
import type { AgentLifecycle, Pod, PodOwner, World } from './world.js';

function add(table: Record<string, number>, key: string, n = 1): void {
  table[key] = (table[key] ?? 0) + n;
}

// --- KEDA ScaledJob -------------------------------------------------------------------------

export const KEDA_STRATEGIES = ['default', 'accurate', 'eager'] as const;
export type KedaStrategy = (typeof KEDA_STRATEGIES)[number];

/** KEDA's ScaledJob pollingInterval default (apis/keda/v1alpha1/withtriggers_types.go). */
export const KEDA_POLLING_SECONDS = 30;

/**
 * ScalingStrategy.GetEffectiveMaxScale of kedacore/keda pkg/scaling/executor/scale_jobs.go:
 * returns [effectiveMaxScale, scaleTo]. `runningJobCount` is KEDA's count of unfinished Jobs
 * minus minReplicaCount; `pendingJobCount` the unfinished Jobs with no pod Running or Succeeded.
 */
export function kedaEffectiveMaxScale(
  strategy: KedaStrategy,
  maxScale: number,
  runningJobCount: number,
  pendingJobCount: number,
  maxReplicaCount: number,
  scaleTo: number,
): [number, number] {
  switch (strategy) {
    case 'default':
      return [maxScale - runningJobCount, scaleTo];
    case 'accurate':
      if (maxScale + runningJobCount - pendingJobCount > maxReplicaCount)
        return [maxReplicaCount - runningJobCount, scaleTo];
      return [maxScale - pendingJobCount, scaleTo];
    case 'eager':
      return [Math.min(maxReplicaCount - runningJobCount - pendingJobCount, maxScale), maxReplicaCount];
  }
}

/**
 * How many Jobs one KEDA poll creates (scale_jobs.go RequestJobScale -> getScalingDecision ->
 * createJobs), with the scaler metrics of pkg/scaling/scaledjob/metrics.go for one trigger whose
 * target value is 1: maxScale = min(ceil(queueLength), maxReplicaCount), scaleTo = queueLength.
 * Active when the queue is not empty or minReplicaCount > 0.
 */
export function kedaJobsToCreate(
  strategy: KedaStrategy,
  o: { queueLength: number; running: number; pending: number; minReplicaCount: number; maxReplicaCount: number },
): number {
  const isActive = o.queueLength > 0 || o.minReplicaCount > 0;
  let effectiveMaxScale: number;
  let scaleTo = o.queueLength;
  const maxScale = Math.min(Math.ceil(o.queueLength), o.maxReplicaCount);
  if (o.running < o.minReplicaCount) {
    scaleTo = o.minReplicaCount - o.running;
    effectiveMaxScale = scaleTo;
  } else {
    [effectiveMaxScale, scaleTo] = kedaEffectiveMaxScale(
      strategy,
      maxScale,
      o.running - o.minReplicaCount,
      o.pending,
      o.maxReplicaCount,
      scaleTo,
    );
  }
  effectiveMaxScale = Math.max(0, effectiveMaxScale);
  if (!isActive || effectiveMaxScale <= 0) return 0;
  return Math.max(0, Math.min(scaleTo, effectiveMaxScale));
}

/** KEDA ScaledJob: every 30 s, per queue, Jobs of one agent each created by the strategy. */
export function startKeda(
  world: World,
  clock: VirtualClock,
  queues: readonly string[],
  p: PolicyParams,
  strategy: KedaStrategy,
): PolicyRun {
  const counters = newCounters();
  /** successfulJobsHistoryLimit / failedJobsHistoryLimit default (scaledjob_types.go). */
  const historyLimit = 100;
  for (const queue of queues) {
    const jobs: Pod[] = []; // one agent pod per Job (parallelism 1)
    const owner: PodOwner = { onPodEnd() {} };
    let finishedKept = 0;
    const poll = async () => {
      clock.after(KEDA_POLLING_SECONDS * 1000, () => void poll());
      // The trigger's metric: CI jobs waiting on the queue (target value 1 per Job).
      const queueLength = world.waitingJobs(queue).length;
      // getRunningJobCount and getPendingJobCount each list the ScaledJob's Jobs; the latter also
      // lists the pods of every unfinished Job (isAnyPodRunningOrCompleted).
      const unfinished = jobs.filter((pod) => pod.state !== 'done');
      add(counters.kube, 'list', 2 + unfinished.length);
      await clock.sleep(p.kubeLatencyMs);
      const running = unfinished.length;
      const pending = unfinished.filter((pod) => pod.state === 'pending').length;
      const n = kedaJobsToCreate(strategy, {
        queueLength,
        running,
        pending,
        minReplicaCount: p.minAgents,
        maxReplicaCount: p.maxAgents,
      });
      for (let i = 0; i < n; i++) {
        add(counters.kube, 'create');
        counters.jobsCreated++;
        jobs.push(world.startPod(queue, owner));
      }
      // cleanUp: one more list; finished Jobs beyond the history limit are deleted.
      add(counters.kube, 'list');
      const finished = jobs.filter((pod) => pod.state === 'done').length;
      if (finished - finishedKept > historyLimit) {
        add(counters.kube, 'delete', finished - finishedKept - historyLimit);
        finishedKept = finished - historyLimit;
      }
    };
    clock.at(0, () => void poll());
  }
  return { counters: () => ({ ...counters, kube: { ...counters.kube } }), errors: [] };
}

// --- agent-stack-k8s --------------------------------------------------------------------------

/** agent-stack-k8s poll-interval default and minimum (internal/controller/monitor/monitor.go). */
export const AGENT_STACK_K8S_POLL_SECONDS = 1;

/**
 * agent-stack-k8s: polls the Agent API's scheduled jobs every second; each new one becomes one
 * Kubernetes Job whose agent acquires exactly that CI job, when a max-in-flight token is free
 * (a token comes back when a Job finishes); otherwise it waits in the limiter's queue.
 */
export function startAgentStackK8s(world: World, clock: VirtualClock, queues: readonly string[], p: PolicyParams) {
  return startJobPerCiJob(world, clock, p, { pollSeconds: AGENT_STACK_K8S_POLL_SECONDS, queues });
}

// --- github-aws-runners -----------------------------------------------------------------------

export const GITHUB_AWS_RUNNERS = {
  /** delay_webhook_event (variables.tf). */
  delayWebhookEventSeconds: 30,
  /** scale_down_schedule_expression cron(* /5 * * * ? *) (variables.tf). */
  scaleDownEverySeconds: 300,
  /** minimum_running_time_in_minutes for linux (modules/runners/scale-down.tf). */
  minimumRunningTimeSeconds: 300,
} as const;

/** A non-ephemeral runner (enable_ephemeral_runners = false, the default). */
const PERSISTENT_RUNNER: AgentLifecycle = { ephemeral: false, idleTimeout: false };

/** scale-up.ts: runners to create for `scaleUp` queued jobs with `current` runners of at most `maximum`. */
export function githubAwsNewRunners(scaleUp: number, current: number, maximum: number): number {
  return maximum === -1 ? scaleUp : Math.max(0, Math.min(scaleUp, maximum - current));
}

/** scale-down.ts runnerMinimumTimeExceeded: launch time + minimum running time is in the past. */
export function githubAwsMinimumTimeExceeded(launchSeconds: number, nowSeconds: number, minimumSeconds: number) {
  return launchSeconds + minimumSeconds < nowSeconds;
}

/**
 * github-aws-runners: each `workflow_job queued` webhook reaches the scale-up Lambda after the
 * SQS delay (30 s); if the job is still queued and fewer than the maximum runners exist, one
 * runner is launched. Runners are not ephemeral: they take job after job. Every 5 minutes the
 * scale-down Lambda terminates the runners that are idle and have run at least the minimum
 * running time (5 min). With a pool size, the pool Lambda tops the idle runners up to that size
 * on the same 5-minute schedule (pool_config; off unless `githubAwsPoolSize` > 0).
 */
export function startGithubAwsRunners(
  world: World,
  clock: VirtualClock,
  queues: readonly string[],
  p: PolicyParams & { readonly githubAwsPoolSize?: number },
): PolicyRun {
  const counters = newCounters();
  const c = GITHUB_AWS_RUNNERS;
  const runners = new Map<string, Pod[]>(queues.map((q) => [q, []]));
  const owner: PodOwner = { onPodEnd() {} };
  const alive = (queue: string) => (runners.get(queue) ?? []).filter((r) => r.state !== 'done');
  const launch = (queue: string) => {
    // RunInstances (counted as a create; these runners are EC2 instances, not Kubernetes Jobs).
    add(counters.kube, 'create');
    counters.jobsCreated++;
    runners.get(queue)?.push(world.startPod(queue, owner, undefined, PERSISTENT_RUNNER));
  };
  const byId = new Map(world.jobs.map((j) => [j.trace.id, j]));
  world.sink = (event) => {
    if (event.kind !== 'scheduled') return;
    clock.after(c.delayWebhookEventSeconds * 1000, () => {
      // enable_job_queued_check (default on for non-ephemeral runners): only a job still queued.
      add(counters.kube, 'get');
      if (byId.get(event.jobId)?.state !== 'waiting') return;
      add(counters.kube, 'list'); // getCurrentRunners
      if (githubAwsNewRunners(1, alive(event.queue).length, p.maxAgents) > 0) launch(event.queue);
    });
  };
  const scaleDown = () => {
    clock.after(c.scaleDownEverySeconds * 1000, scaleDown);
    for (const queue of queues) {
      add(counters.kube, 'list');
      for (const r of alive(queue)) {
        // Booted, not busy, and past the minimum running time: de-registered and terminated.
        if (
          r.state === 'idle' &&
          githubAwsMinimumTimeExceeded(r.createdAt, world.nowSeconds, c.minimumRunningTimeSeconds)
        ) {
          add(counters.kube, 'delete');
          world.killPod(r);
        }
      }
      const pool = p.githubAwsPoolSize ?? 0;
      if (pool > 0) {
        const idle = alive(queue).filter((r) => r.state !== 'busy').length;
        const topUp = Math.min(pool - idle, p.maxAgents - alive(queue).length);
        for (let i = 0; i < topUp; i++) launch(queue);
      }
    }
  };
  clock.at(c.scaleDownEverySeconds * 1000, scaleDown);
  if ((p.githubAwsPoolSize ?? 0) > 0) clock.at(0, () => scaleDown());
  return { counters: () => ({ ...counters, kube: { ...counters.kube } }), errors: [] };
}

// --- ARC scale sets ---------------------------------------------------------------------------

/** cmd/ghalistener/scaler/scaler.go setDesiredWorkerState: min(MinRunners + assigned jobs, MaxRunners). */
export function arcTargetRunners(minRunners: number, maxRunners: number, assignedJobs: number): number {
  return Math.min(minRunners + assignedJobs, maxRunners);
}

const MAX_INT32 = 2 ** 31 - 1;

/** The listener's scaler state (cmd/ghalistener/scaler/scaler.go Scaler): starts at -1, -1. */
export interface ArcScalerState {
  targetRunners: number;
  patchSeq: number;
  /** A JobStarted or JobCompleted message came since the last patch (HandleJobStarted/Completed). */
  dirty: boolean;
}

/**
 * cmd/ghalistener/scaler/scaler.go setDesiredWorkerState(count): the patch ID sent with the
 * replicas. 0 ("force the state": the controller may scale down) only when no job started or
 * completed since the last patch and the target is unchanged and equals minRunners (or on the
 * very first patch, patchSeq 0).
 */
export function arcSetDesiredWorkerState(
  s: ArcScalerState,
  minRunners: number,
  maxRunners: number,
  count: number,
): number {
  const dirty = s.dirty;
  s.dirty = false;
  if (s.patchSeq === MAX_INT32) s.patchSeq = 0;
  s.patchSeq++;
  const target = arcTargetRunners(minRunners, maxRunners, count);
  const old = s.targetRunners;
  s.targetRunners = target;
  return !dirty && target === old && target === minRunners ? 0 : s.patchSeq;
}

/**
 * controllers/actions.github.com/ephemeralrunnerset_controller.go Reconcile, its scaling switch:
 * acts only when patchID is 0 or differs from the latest patch ID annotated on its runners; then
 * creates up to the replicas, and deletes down to them only with patchID 0 (with patchID > 0 a
 * surplus waits for the next patch). `total` = pending + running + failed runners (scaleTotal).
 */
export function arcScaleAction(o: {
  readonly total: number;
  readonly replicas: number;
  readonly patchID: number;
  readonly latestPatchID: number;
}): { readonly create: number } | { readonly delete: number } | undefined {
  if (o.patchID !== 0 && o.patchID === o.latestPatchID) return undefined;
  if (o.total < o.replicas) return { create: o.replicas - o.total };
  if (o.patchID === 0 && o.total > o.replicas) return { delete: o.total - o.replicas };
  return undefined;
}

/** An ephemeral runner as the EphemeralRunnerSet controller sees it. */
export interface ArcRunner {
  readonly createdAt: number;
  readonly phase: 'pending' | 'running';
  /** Status.RunnerId set: its JIT configuration was made (before its pod is created). */
  readonly registered: boolean;
  /** Status.JobID set by the listener's HandleJobStarted. */
  readonly hasJob: boolean;
}

/**
 * ephemeralrunnerset_controller.go deleteIdleEphemeralRunners: up to `count` runners, pending
 * ones first, then running ones, each oldest first (newEphemeralRunnerStepper), skipping those
 * not registered yet and those running a job.
 */
export function arcIdleRunnersToDelete<R extends ArcRunner>(runners: readonly R[], count: number): R[] {
  if (count <= 0) return [];
  const byAge = (a: R, b: R) => a.createdAt - b.createdAt;
  const ordered = [
    ...runners.filter((r) => r.phase === 'pending').sort(byAge),
    ...runners.filter((r) => r.phase === 'running').sort(byAge),
  ];
  return ordered.filter((r) => r.registered && !r.hasJob).slice(0, count);
}

/** The Actions service holds GetMessage up to about 50 s (actions/scaleset README, "Long Polling"). */
export const ARC_LONG_POLL_SECONDS = 50;

/** An ARC ephemeral runner: one job, and it waits for it as long as it takes. */
const ARC_RUNNER: AgentLifecycle = { ephemeral: true, idleTimeout: false };

/**
 * ARC runner scale sets, fed as the listener sees jobs: the Actions service's message session
 * (actions/scaleset listener/listener.go Run), not webhooks. A message comes when a job of the
 * scale set changes (after the webhook latency, never reordered): JobStarted and JobCompleted
 * mark the scaler dirty, then HandleDesiredRunnerCount(statistics.TotalAssignedJobs); a long poll
 * that ends empty (ARC_LONG_POLL_SECONDS) calls it with the latest statistics. The scaler patches
 * the EphemeralRunnerSet's replicas with a patch ID (arcSetDesiredWorkerState); its controller
 * (arcScaleAction) creates runners up to the replicas once per patch (runners carry the patch ID
 * that made them, so a finished runner is replaced only on the next patch), and scales down only
 * on patch ID 0, deleting registered runners without a job, oldest first (arcIdleRunnersToDelete).
 * Runners are registered when made (their JIT configuration comes before the pod).
 */
export function startArc(world: World, clock: VirtualClock, queues: readonly string[], p: PolicyParams): PolicyRun {
  const counters = newCounters();
  for (const queue of queues) {
    const runners: { pod: Pod; patchID: number }[] = [];
    const scaler: ArcScalerState = { targetRunners: -1, patchSeq: -1, dirty: false };
    let replicas = 0;
    let patchID = 0;
    let poll = 0;
    let message: { started: boolean; completed: boolean } | undefined;
    const reconcile = () => {
      const alive = runners.filter((r) => r.pod.state !== 'done');
      runners.splice(0, runners.length, ...alive); // finished runners are cleaned up
      const latestPatchID = Math.max(0, ...alive.map((r) => r.patchID));
      const action = arcScaleAction({ total: alive.length, replicas, patchID, latestPatchID });
      if (!action) return;
      if ('create' in action) {
        for (let i = 0; i < action.create; i++) {
          add(counters.kube, 'create');
          counters.jobsCreated++;
          runners.push({ pod: world.startPod(queue, owner, undefined, ARC_RUNNER), patchID });
        }
        return;
      }
      const view = alive.map((r) => ({
        r,
        createdAt: r.pod.createdAt,
        phase: r.pod.state === 'pending' ? ('pending' as const) : ('running' as const),
        registered: true,
        hasJob: r.pod.state === 'busy' || r.pod.state === 'exiting',
      }));
      for (const { r } of arcIdleRunnersToDelete(view, action.delete)) {
        add(counters.kube, 'delete');
        world.killPod(r.pod);
      }
    };
    const owner: PodOwner = { onPodEnd: () => clock.after(0, reconcile) };
    const handle = (count: number) => {
      const id = arcSetDesiredWorkerState(scaler, p.minAgents, p.maxAgents, count);
      add(counters.kube, 'patch');
      replicas = scaler.targetRunners;
      patchID = id;
      reconcile();
    };
    const assigned = () => {
      const { waiting, running } = world.ciCounts(queue);
      return waiting + running;
    };
    // GetMessage: a long poll; empty after ARC_LONG_POLL_SECONDS.
    const getMessage = () => {
      const mine = ++poll;
      clock.after(ARC_LONG_POLL_SECONDS * 1000, () => {
        if (mine !== poll) return;
        handle(assigned());
        getMessage();
      });
    };
    const deliver = () => {
      const m = message;
      message = undefined;
      if (!m) return;
      if (m.started || m.completed) scaler.dirty = true;
      handle(assigned());
      getMessage();
    };
    world.jobChanges.push((job, kind) => {
      if (job.trace.queue !== queue) return;
      if (!message) {
        message = { started: false, completed: false };
        clock.after(world.params.webhookLatencySeconds * 1000, deliver);
      }
      if (kind === 'started') message.started = true;
      if (kind === 'finished' || kind === 'cancelled') message.completed = true;
    });
    clock.at(0, () => {
      handle(assigned()); // the session's initial statistics
      getMessage();
    });
  }
  return { counters: () => ({ ...counters, kube: { ...counters.kube } }), errors: [] };
}
