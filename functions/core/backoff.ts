/**
 * Back-off of queues whose agents fail at start. Pure: the scaler asks it which Jobs' pods to
 * look at (`select`, from the Job list it already has), feeds it those pods (listed together for
 * all queues, `observe`) and asks it, per queue, how many agents it may create now. No I/O; time
 * comes in as an argument.
 *
 * Only suspicious Jobs are looked at, so the pods listed per tick follow what is failing, not
 * the number of agents. A Job's status tells which: `failed` grew since its pods were last seen
 * (a failed pod: its Failed pods are listed); pods not ready (`active > ready`)
 * NOT_READY_GRACE_MS after the Job was created (waiting errors and unschedulable pods are never
 * ready); in a queue backing off, or with such a Job, the Jobs created since the failure (less
 * the start window) that run or succeeded: its probe, and any agent that may prove the queue
 * healthy in the same tick (as after a cold start). Of the last two, the pods of the first
 * POD_SAMPLE_INDEXES completion indexes are listed. A healthy Job (its active pods
 * ready, or finished) is not looked at: a Job that `succeeded` and is newer than the queue's last
 * failure proves the queue healthy by its status alone.
 *
 * An agent "fails at start" when its pod
 *  - failed within START_WINDOW_MS of starting (a `failedIndexes` entry of its Job: wrong or
 *    expired credentials, a crashing entrypoint), not counting a disruption (eviction,
 *    preemption: the Job replaces those itself) or the Job's deadline;
 *  - waits with a container error Kubernetes will not get past alone (CreateContainerConfigError,
 *    ImagePullBackOff, ErrImagePull, InvalidImageName, ...);
 *  - has been unschedulable for longer than `unschedulableMs`;
 *  - cannot even be created: its Job has no pod CREATE_GRACE_MS after its creation and the Job
 *    controller recorded a `FailedCreate` Event on it (the API server refuses the pods: a
 *    ResourceQuota, LimitRange, PodSecurity level or missing ServiceAccount). The Job stays
 *    active=0, failed=0 without a condition, so only the Event tells (`select` names such Jobs
 *    in `unstarted`, the scaler lists their Events and passes them in `createFailures`).
 * It is "healthy" once it succeeded, or has been running for START_WINDOW_MS.
 *
 * A queue is held only while failures dominate it: at least HOLD_AFTER_FAILURES (2) agents failed
 * at start within the window (`windowMs`, FAILURE_WINDOW_MS; the newest failure always counts),
 * and more than started healthy in it (the Job list's `ready` and `succeeded`
 * pods of the Jobs created in the window, which costs no pod listing). A sporadic failure (a bad node, a spot reclaim, a slow image pull) among
 * healthy starts is logged and counted but holds nothing. While failures dominate, each Job with
 * an agent that failed at start is one step: the queue creates nothing for base * 2^(step-1)
 * (capped at max), then one probe Job of as many agents as started healthy in the window (at
 * least one: its healthy capacity), and nothing more until that probe resolved (failed: next
 * step; healthy: reset) or `maxMs` passed. A persistent failure (a bad image: nothing starts
 * healthy) is held exactly as before, one agent per probe. The first healthy agent newer than the
 * last failure resets the queue. Other queues are never held: the state is per queue.
 *
 * A pod the Job controller killed because the Job passed its `activeDeadlineSeconds` (the Job
 * has FailureTarget/Failed with reason DeadlineExceeded; the controller deletes its active pods
 * and counts them in `failed`) is no start failure, however soon after its start it ended.
 *
 * A Job whose pods the API server refuses (above) holds its queue at once: quota, PodSecurity or a
 * missing ServiceAccount do not mend themselves, and retrying costs a Job a tick.
 *
 * Failures stay visible in the cluster until the Job's TTL, so a cold start re-learns the step
 * from the failing Jobs still there.
 */
import type { V1ContainerStatus, V1Job, V1Pod } from '@kubernetes/client-node';
import { isReady, jobNameOf, QUEUE_ANNOTATION, QUEUE_LABEL, queueOf } from './agent-job.js';

export interface BackoffPolicy {
  /** First hold (ms). */
  readonly baseMs: number;
  /** Longest hold (ms); also how long an unresolved probe blocks further agents. */
  readonly maxMs: number;
  /** A pod unschedulable this long counts as failed at start. */
  readonly unschedulableMs: number;
  /** A pod failing within this long of its start failed AT start; running this long is healthy. */
  readonly startWindowMs?: number;
  /** Pods of a Job still not all ready this long after its creation are looked at. */
  readonly notReadyGraceMs?: number;
  /** Failures and healthy starts are weighed over this long (ms); default FAILURE_WINDOW_MS. */
  readonly windowMs?: number;
}

/**
 * How far back failures at start and healthy starts are weighed against each other: long enough
 * to see a queue's recent starts, short enough that last hour's bad node does not count.
 */
export const FAILURE_WINDOW_MS = 600_000;

/**
 * Failures at start before a queue can be held: one failed agent with nothing healthy to weigh
 * it against (a queue's first agent in a while, on a bad node) is retried at once; a second
 * failure with no healthy start between holds it.
 */
export const HOLD_AFTER_FAILURES = 2;

export const START_WINDOW_MS = 60_000;

/**
 * How long after its creation a Job whose pods are not all ready is looked at: longer than a
 * healthy agent takes to be ready with its image cached, so a burst of starting agents is not
 * listed, and short enough that a waiting error (image pull, missing Secret) holds the queue
 * within a tick or two of it.
 */
export const NOT_READY_GRACE_MS = 30_000;

/**
 * How long after its creation a Job with no pod at all is suspected of pods the API server
 * refuses (its FailedCreate Events are listed): the Job controller creates pods within a second
 * or two of the Job, so a healthy Job is never listed, and a refused one is seen at the next tick.
 */
export const CREATE_GRACE_MS = 10_000;

/** What the Job list says of one Job: enough to tell whether its pods need a look. */
export interface JobStatusView {
  readonly name: string;
  readonly queue: string;
  /** Creation time (epoch ms): every pod of the Job is newer. */
  readonly created: number;
  readonly active: number;
  /** Active pods with the Ready condition (Job status `ready`; 0 where the server omits it). */
  readonly ready: number;
  readonly failed: number;
  readonly succeeded: number;
  /** The Job is over (Complete, Failed, or their forerunners SuccessCriteriaMet / FailureTarget). */
  readonly finished?: boolean;
  /** When the Job passed its activeDeadlineSeconds (epoch ms; condition reason DeadlineExceeded). */
  readonly deadlineAt?: number;
}

/** Container waiting reasons that do not resolve without a change by someone. */
export const START_ERRORS: ReadonlySet<string> = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'ImagePullBackOff',
  'ErrImagePull',
  'ErrImageNeverPull',
  'InvalidImageName',
  'RunContainerError',
  'CrashLoopBackOff',
]);

export type AgentHealth =
  | {
      readonly kind: 'failed';
      readonly reason: string;
      readonly message: string;
      /** When the pod ended (epoch ms), for a pod that terminated; absent while it still fails. */
      readonly endedAt?: number;
    }
  | { readonly kind: 'healthy' }
  | { readonly kind: 'starting' }
  /** Not a signal either way (evicted, deadline reached). */
  | { readonly kind: 'ignored' };

const time = (t: Date | string | undefined): number | undefined => {
  if (t === undefined) return undefined;
  const ms = new Date(t).getTime();
  return Number.isNaN(ms) ? undefined : ms;
};

function waitingError(statuses: readonly V1ContainerStatus[] | undefined): AgentHealth | undefined {
  for (const s of statuses ?? []) {
    const reason = s.state?.waiting?.reason;
    if (reason && START_ERRORS.has(reason))
      return { kind: 'failed', reason, message: `container ${s.name}: ${s.state?.waiting?.message ?? reason}` };
  }
  return undefined;
}

/** What one agent pod says about its queue's health. */
export function classifyPod(pod: V1Pod, now: number, policy: BackoffPolicy): AgentHealth {
  const window = policy.startWindowMs ?? START_WINDOW_MS;
  const status = pod.status ?? {};
  const conditions = status.conditions ?? [];
  switch (status.phase) {
    case 'Succeeded':
      return { kind: 'healthy' };
    case 'Failed': {
      if (conditions.some((c) => c.type === 'DisruptionTarget' && c.status === 'True')) return { kind: 'ignored' };
      if (status.reason === 'DeadlineExceeded') return { kind: 'ignored' };
      const terminated = [...(status.containerStatuses ?? []), ...(status.initContainerStatuses ?? [])]
        .map((s) => ({ name: s.name, t: s.state?.terminated }))
        .find((s) => s.t && s.t.exitCode !== 0);
      const started = time(terminated?.t?.startedAt) ?? time(status.startTime);
      const finished = time(terminated?.t?.finishedAt) ?? now;
      if (started !== undefined && finished - started >= window) return { kind: 'healthy' };
      const reason = terminated?.t?.reason ?? status.reason ?? 'Failed';
      const message = terminated
        ? `container ${terminated.name} exited with code ${terminated.t?.exitCode}${terminated.t?.message ? `: ${terminated.t.message}` : ''}`
        : (status.message ?? 'pod failed');
      return { kind: 'failed', reason, message, endedAt: finished };
    }
    case 'Running': {
      const err = waitingError(status.containerStatuses);
      if (err) return err;
      const started = time(status.startTime);
      return started !== undefined && now - started >= window ? { kind: 'healthy' } : { kind: 'starting' };
    }
    default: {
      const err = waitingError(status.initContainerStatuses) ?? waitingError(status.containerStatuses);
      if (err) return err;
      const unschedulable = conditions.find(
        (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
      );
      const since = time(unschedulable?.lastTransitionTime);
      if (unschedulable && since !== undefined && now - since >= policy.unschedulableMs)
        return { kind: 'failed', reason: 'Unschedulable', message: unschedulable.message ?? 'pod unschedulable' };
      return stuckCreating(pod, now, policy) ?? { kind: 'starting' };
    }
  }
}

const FINISHED = ['Complete', 'Failed', 'SuccessCriteriaMet', 'FailureTarget'];

/**
 * A pod placed on a node whose containers are still not created `unschedulableMs` later: every
 * container waits with ContainerCreating (PodInitializing behind an init container), which is
 * what the kubelet shows while a volume cannot be mounted (a missing Secret or ConfigMap: its
 * FailedMount events say which) — it stays so until the pod's deadline.
 */
function stuckCreating(pod: V1Pod, now: number, policy: BackoffPolicy): AgentHealth | undefined {
  const status = pod.status ?? {};
  const scheduled = (status.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status === 'True');
  const since = time(scheduled?.lastTransitionTime) ?? time(pod.metadata?.creationTimestamp);
  const containers = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])];
  const creating =
    containers.length > 0 &&
    containers.every((c) => ['ContainerCreating', 'PodInitializing'].includes(c.state?.waiting?.reason ?? ''));
  if (!scheduled || !creating || since === undefined || now - since < policy.unschedulableMs) return undefined;
  const seconds = Math.round((now - since) / 1000);
  return {
    kind: 'failed',
    reason: 'ContainerCreating',
    message: `containers not created ${seconds} s after the pod was scheduled: a volume cannot be mounted (a missing Secret or ConfigMap? see the pod's FailedMount events)`,
  };
}

/** The back-off's view of a listed Job; undefined for a Job without a name or queue. */
export function jobStatusView(job: V1Job): JobStatusView | undefined {
  const name = job.metadata?.name;
  const queue = queueOf(job);
  if (!name || queue === undefined) return undefined;
  const s = job.status ?? {};
  const over = (s.conditions ?? []).filter((c) => FINISHED.includes(c.type) && c.status === 'True');
  // job_controller.go: past its deadline the Job gets FailureTarget (then Failed) with reason
  // DeadlineExceeded and its active pods are deleted; the earliest such transition is when.
  const deadline = over
    .filter((c) => c.reason === 'DeadlineExceeded')
    .map((c) => time(c.lastTransitionTime))
    .filter((t): t is number => t !== undefined);
  return {
    ...(over.length > 0 ? { finished: true } : {}),
    ...(deadline.length > 0 ? { deadlineAt: Math.min(...deadline) } : {}),
    name,
    queue,
    created: time(job.metadata?.creationTimestamp) ?? 0,
    active: s.active ?? 0,
    ready: s.ready ?? 0,
    failed: s.failed ?? 0,
    succeeded: s.succeeded ?? 0,
  };
}

/** Completion indexes 0..n-1 of a sampled Job are looked at (QueueBackoff.select). */
export const POD_SAMPLE_INDEXES = 5;

/** The Jobs whose pods the back-off needs this tick (QueueBackoff.select). */
export interface PodSelection {
  /** All their Failed pods. */
  readonly failed: readonly string[];
  /** The pods of their first POD_SAMPLE_INDEXES completion indexes. */
  readonly sample: readonly string[];
  /** Jobs without any pod CREATE_GRACE_MS after their creation: their FailedCreate Events are listed. */
  readonly unstarted?: readonly string[];
}

/** What the scaler looked at this tick (see QueueBackoff.observe). */
export interface ObservedScope {
  /** Every Job listed this tick (all queues). */
  readonly jobs: readonly JobStatusView[];
  /** The Jobs whose Failed pods were all listed. */
  readonly failed: ReadonlySet<string>;
  /** The Jobs some of whose pods were listed. */
  readonly sample: ReadonlySet<string>;
  /**
   * Of the Jobs `select` named `unstarted`, those whose pods the API server refuses: the
   * message and time of their newest FailedCreate Event.
   */
  readonly createFailures?: ReadonlyMap<string, { readonly message: string; readonly at: number }>;
}

export type BackoffEvent =
  | {
      readonly kind: 'backoff';
      readonly queue: string;
      /** Consecutive failing Jobs (1 = first). */
      readonly step: number;
      readonly holdMs: number;
      readonly reason: string;
      readonly message: string;
      readonly pod: string;
      readonly jobName: string;
      /** Whether the queue is held (failures dominate) or the failure is sporadic (nothing held). */
      readonly held: boolean;
      /** Agents that failed at start / started healthy in the window, this failure included. */
      readonly failures: number;
      readonly healthy: number;
    }
  | { readonly kind: 'recovered'; readonly queue: string; readonly step: number };

interface QueueState {
  /** Failing Jobs counted while failures dominated, since the last healthy agent (0: not held). */
  step: number;
  holdUntil: number;
  /** Creation time of the newest pod that failed at start. */
  lastFailureAt: number;
  /** Jobs already counted as a step (pruned to the Jobs still listed). */
  counted: Set<string>;
  /** Pods that failed at start, with their creation time (pruned to the window, the newest kept). */
  failedPods: Map<string, number>;
  /** Agents that started healthy in the window, as of the last look. */
  healthy: number;
  /** When a Job of the queue was last refused its pods (0: not since the last healthy agent). */
  refusedAt: number;
  probe?: { jobName: string; at: number } | undefined;
}

/** What a queue may create now. */
export interface Gate {
  /** Most agents the queue may create now (Infinity when it is not backing off). */
  readonly allow: number;
  readonly step: number;
  /** Epoch ms until which the queue is held (0 when not held). */
  readonly holdUntil: number;
}

const IGNORED: AgentHealth = { kind: 'ignored' };

/**
 * A pod the Job controller ended because its Job passed activeDeadlineSeconds, not deleted (a
 * deleted one is deletedBySomeone): ended once the deadline had come (timestamps are whole
 * seconds, hence the second of slack).
 */
function pastDeadline(pod: V1Pod, job: JobStatusView | undefined): boolean {
  if (job?.deadlineAt === undefined) return false;
  const ended = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])]
    .map((s) => time(s.state?.terminated?.finishedAt))
    .filter((t): t is number => t !== undefined);
  return ended.length > 0 && Math.max(...ended) >= job.deadlineAt - 1000;
}

/**
 * A pod deleted through the API before it ended: stopped by the scaler as surplus
 * (scaler/scale-down.ts), by an operator, or by the Job controller. However it ends (an agent
 * image that does not handle SIGTERM ends Failed, 143), it says nothing about the template.
 */
function deletedBySomeone(pod: V1Pod): boolean {
  return pod.metadata?.deletionTimestamp !== undefined;
}

/**
 * What an operator must fix, from the message the API server refused the pods with (the text
 * of the admission plugins: plugin/pkg/admission/resourcequota, limitranger, serviceaccount,
 * and pod-security-admission).
 */
export function createFailureReason(message: string): string {
  if (/exceeded quota|failed quota|must specify (limits|requests)/i.test(message)) return 'ResourceQuota';
  if (/violates PodSecurity/i.test(message)) return 'PodSecurity';
  if (/service ?account/i.test(message)) return 'ServiceAccountMissing';
  if (/(maximum|minimum) (cpu|memory|storage|ephemeral-storage)|limit to request ratio/i.test(message))
    return 'LimitRange';
  return 'FailedCreate';
}

const queueOfPod = (pod: V1Pod): string | undefined =>
  pod.metadata?.annotations?.[QUEUE_ANNOTATION] ?? pod.metadata?.labels?.[QUEUE_LABEL];

export class QueueBackoff {
  private readonly queues = new Map<string, QueueState>();
  /** Per Job, its status `failed` when its pods were last looked at (pruned to the Jobs listed). */
  private readonly failedSeen = new Map<string, number>();

  constructor(private readonly policy: BackoffPolicy) {}

  private state(queue: string): QueueState {
    let s = this.queues.get(queue);
    if (!s) {
      s = {
        step: 0,
        holdUntil: 0,
        lastFailureAt: 0,
        counted: new Set(),
        failedPods: new Map(),
        healthy: 0,
        refusedAt: 0,
      };
      this.queues.set(queue, s);
    }
    return s;
  }

  private windowMs(): number {
    return this.policy.windowMs ?? FAILURE_WINDOW_MS;
  }

  /** Failures at start in the window (the newest always counts, so a long hold is not forgotten). */
  private failuresIn(s: QueueState, now: number): number {
    const from = now - this.windowMs();
    let newest = Number.NEGATIVE_INFINITY;
    for (const t of s.failedPods.values()) newest = Math.max(newest, t);
    for (const [pod, t] of s.failedPods) if (t < from && t < newest) s.failedPods.delete(pod);
    return s.failedPods.size;
  }

  /**
   * Failures dominate the queue: more agents failed at start in the window than started healthy
   * in it, and at least HOLD_AFTER_FAILURES of them unless the queue is held already (a long hold
   * may leave only its newest failure in the window).
   */
  private dominated(s: QueueState, now: number): boolean {
    if (s.refusedAt > 0) return true;
    const failures = this.failuresIn(s, now);
    return failures > s.healthy && (failures >= HOLD_AFTER_FAILURES || s.step > 0);
  }

  private holdMs(step: number): number {
    return Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** Math.min(30, step - 1));
  }

  /**
   * The Jobs whose pods must be looked at this tick (see the top of this file), from the Jobs
   * listed this tick; the others' pods can change nothing. `failed`: Jobs with a failure not seen
   * yet (their Failed pods are listed, all of them). `sample`: Jobs not ready past the grace, and
   * in a queue backing off or with a Job of those two kinds, the recent Jobs that run or succeeded
   * (the pods of their first POD_SAMPLE_INDEXES indexes are listed: the agents of one Job share
   * one template, so a waiting error shows on each).
   */
  select(jobs: readonly JobStatusView[], now: number): PodSelection {
    const grace = this.policy.notReadyGraceMs ?? NOT_READY_GRACE_MS;
    const window = this.policy.startWindowMs ?? START_WINDOW_MS;
    const failed: string[] = [];
    const unstarted: string[] = [];
    const suspect = new Set<string>();
    /** Per queue, since when a pod may prove it healthy (its oldest suspicious Job, its last failure). */
    const since = new Map<string, number>();
    const from = (queue: string, t: number) => since.set(queue, Math.min(since.get(queue) ?? t, t));
    for (const j of jobs) {
      const s = this.queues.get(j.queue);
      if (s && s.step > 0) from(j.queue, s.lastFailureAt);
      // A pod failed since the last look: a failure at start, or a long run (health).
      if (j.failed > (this.failedSeen.get(j.name) ?? 0)) {
        failed.push(j.name);
        from(j.queue, j.created);
      }
      // Unless counted already (its pods cannot add a step): waiting errors and unschedulable
      // pods are never ready.
      if (!s?.counted.has(j.name) && j.active > j.ready && now - j.created >= grace) {
        suspect.add(j.name);
        from(j.queue, j.created);
      }
      // No pod at all past the create grace: the API server may refuse them (its Events tell).
      if (
        !s?.counted.has(j.name) &&
        !j.finished &&
        j.active + j.succeeded + j.failed === 0 &&
        now - j.created >= CREATE_GRACE_MS
      ) {
        unstarted.push(j.name);
        from(j.queue, j.created);
      }
    }
    // In a queue backing off or about to: the agents that may prove it healthy in the same tick
    // (the probe's verdict; after a cold start, the agents that ran fine since the failure), which
    // only a pod newer than the failure does (a Job's pods are created as it starts).
    const sample = jobs
      .filter((j) => {
        const t = since.get(j.queue);
        const mayProve = t !== undefined && (j.active > 0 || j.succeeded > 0) && j.created >= t - window;
        return suspect.has(j.name) || mayProve;
      })
      .map((j) => j.name);
    return { failed, sample, ...(unstarted.length > 0 ? { unstarted } : {}) };
  }

  /**
   * Feeds one tick's agent pods; returns what changed. With a `scope`, the pods are those `select`
   * asked for (pods of other Jobs are left out) and `scope.jobs` is every Job listed: a Job not
   * listed any more is forgotten, a Job that succeeded since the queue's last failure resets it.
   * Without one, the pods are every agent pod.
   */
  observe(pods: readonly V1Pod[], now: number, scope?: ObservedScope): BackoffEvent[] {
    const events: BackoffEvent[] = [];
    const byQueue = new Map<string, { pod: V1Pod; job: string; created: number; health: AgentHealth }[]>();
    const jobsByQueue = new Map<string, JobStatusView[]>();
    const jobsByName = new Map((scope?.jobs ?? []).map((j) => [j.name, j]));
    for (const j of scope?.jobs ?? []) {
      const list = jobsByQueue.get(j.queue) ?? [];
      list.push(j);
      jobsByQueue.set(j.queue, list);
    }
    for (const pod of pods) {
      const queue = queueOfPod(pod);
      const job = jobNameOf(pod);
      if (queue === undefined || job === undefined || (scope && !scope.failed.has(job) && !scope.sample.has(job)))
        continue;
      const health =
        deletedBySomeone(pod) || pastDeadline(pod, jobsByName.get(job)) ? IGNORED : classifyPod(pod, now, this.policy);
      const list = byQueue.get(queue) ?? [];
      list.push({ pod, job, created: time(pod.metadata?.creationTimestamp) ?? now, health });
      byQueue.set(queue, list);
    }
    for (const queue of new Set([...this.queues.keys(), ...byQueue.keys(), ...jobsByQueue.keys()])) {
      const s = this.state(queue);
      const seen = byQueue.get(queue) ?? [];
      const listed = jobsByQueue.get(queue) ?? [];
      const listedJobs = new Set([...seen.map((p) => p.job), ...listed.map((j) => j.name)]);
      for (const j of s.counted) if (!listedJobs.has(j)) s.counted.delete(j);

      // Healthy starts in the window: from the Job list (ready or succeeded pods of the Jobs
      // created in it) when there is one, else from the pods given.
      const from = now - this.windowMs();
      s.healthy = scope
        ? listed.filter((j) => j.created >= from).reduce((n, j) => n + j.ready + j.succeeded, 0)
        : seen.filter((p) => p.created >= from && (p.health.kind === 'healthy' || isReady(p.pod))).length;

      // A Job whose pods cannot be created: one failure, from the newest FailedCreate Event.
      const refused = listed.flatMap((j) => {
        const f = scope?.createFailures?.get(j.name);
        return f && !j.finished && j.active + j.succeeded + j.failed === 0
          ? [
              {
                pod: undefined,
                job: j.name,
                created: j.created,
                health: {
                  kind: 'failed',
                  reason: createFailureReason(f.message),
                  // Still failing (the controller keeps retrying): held from now.
                  message: `the pods of Job ${j.name} cannot be created: ${f.message}`,
                } as AgentHealth,
              },
            ]
          : [];
      });
      const failures = [...seen, ...refused]
        .filter((p) => p.health.kind === 'failed')
        .sort((a, b) => a.created - b.created || a.job.localeCompare(b.job));
      const record = (f: (typeof failures)[number]) => s.failedPods.set(f.pod?.metadata?.name ?? f.job, f.created);
      for (const f of failures) {
        if (s.counted.has(f.job)) {
          record(f);
          continue;
        }
        s.counted.add(f.job);
        // A Job's agents are one batch: its failed pods are weighed together.
        for (const g of failures) if (g.job === f.job) record(g);
        s.lastFailureAt = Math.max(s.lastFailureAt, f.created);
        const h = f.health as Extract<AgentHealth, { kind: 'failed' }>;
        // Pods the API server refuses (no pod at all) hold at once; otherwise a sporadic failure
        // among healthy starts holds nothing (and is no step).
        if (f.pod === undefined) s.refusedAt = now;
        const held = this.dominated(s, now);
        if (held) s.step++;
        const holdMs = held ? this.holdMs(s.step) : 0;
        // Held from when the agent failed, not from when this process first saw it: a cold
        // start (a new Lambda container) that lists a pod which failed long ago holds the queue
        // for what is left of that hold, not for a whole new one on every invocation.
        if (held) s.holdUntil = Math.max(s.holdUntil, Math.min(now, h.endedAt ?? now) + holdMs);
        if (s.probe?.jobName === f.job) s.probe = undefined;
        events.push({
          kind: 'backoff',
          queue,
          step: s.step,
          holdMs,
          reason: h.reason,
          message: h.message,
          pod: f.pod?.metadata?.name ?? '',
          jobName: f.job,
          held,
          failures: s.failedPods.size,
          healthy: s.healthy,
        });
      }
      // A Job's pods are all newer than the Job: one that succeeded proves a healthy agent.
      const healthy =
        seen.some((p) => p.health.kind === 'healthy' && p.created >= s.lastFailureAt) ||
        listed.some((j) => j.succeeded > 0 && j.created >= s.lastFailureAt);
      if (healthy && s.step > 0) {
        events.push({ kind: 'recovered', queue, step: s.step });
        s.step = 0;
        s.holdUntil = 0;
        s.refusedAt = 0;
        s.probe = undefined;
      }
      // A probe whose Job went away without a verdict (deleted, TTL) no longer holds the queue.
      if (s.probe && !listedJobs.has(s.probe.jobName) && now - s.probe.at > this.policy.baseMs) s.probe = undefined;
    }
    if (scope) {
      const listed = new Set(scope.jobs.map((j) => j.name));
      for (const name of this.failedSeen.keys()) if (!listed.has(name)) this.failedSeen.delete(name);
      for (const j of scope.jobs) if (scope.failed.has(j.name)) this.failedSeen.set(j.name, j.failed);
    }
    return events;
  }

  /**
   * How many agents `queue` may create at `now`: any number unless failures dominate it; then
   * none during the hold and while a probe is unresolved, else a probe of as many agents as
   * started healthy in the window (at least one).
   */
  gate(queue: string, now: number): Gate {
    const s = this.queues.get(queue);
    if (!s || s.step === 0 || !this.dominated(s, now))
      return { allow: Number.POSITIVE_INFINITY, step: 0, holdUntil: 0 };
    if (now < s.holdUntil) return { allow: 0, step: s.step, holdUntil: s.holdUntil };
    if (s.probe && now - s.probe.at < this.policy.maxMs)
      return { allow: 0, step: s.step, holdUntil: s.probe.at + this.policy.maxMs };
    return { allow: Math.max(1, s.healthy), step: s.step, holdUntil: 0 };
  }

  /** The scaler created a Job for `queue`: while held, it is the probe. */
  created(queue: string, jobName: string, now: number): void {
    const s = this.queues.get(queue);
    if (s && s.step > 0 && this.dominated(s, now)) s.probe = { jobName, at: now };
  }

  /** Per queue, its step while held (0: not held), for metrics. */
  steps(now: number = Number.NEGATIVE_INFINITY): Record<string, number> {
    return Object.fromEntries([...this.queues].map(([q, s]) => [q, s.step > 0 && this.dominated(s, now) ? s.step : 0]));
  }
}
