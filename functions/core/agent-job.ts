/**
 * Pure construction and reading of agent Jobs (no I/O).
 *
 * One dispatch (a batch of `count` agents for one queue) is ONE Kubernetes Job with
 * `completionMode: Indexed`, `completions = parallelism = count`: every agent is one index.
 *
 * Why one agent's failure never fails or kills its siblings
 * --------------------------------------------------------
 * The mechanism is **`backoffLimitPerIndex: 0` on an Indexed Job** (GA in Kubernetes 1.33, beta
 * and on by default since 1.29). With a per-index limit the Job controller counts failures per
 * index: a failed agent pod marks only ITS index failed (listed in `status.failedIndexes`) and
 * that index is not retried (limit 0: the CI job it took is gone, a retry would just be an idle
 * agent). All other indexes keep running; the Job only reaches its terminal condition when every
 * index has succeeded or failed (`Failed` with reason `FailedIndexes` if any failed). We leave
 * `maxFailedIndexes` unset so no number of failed indexes terminates the Job early.
 *
 * What we deliberately do NOT use:
 * - a plain `backoffLimit` (the default 6, or 0): it counts failed pods across ALL indexes of the
 *   Job; once exceeded the Job gets `Failed` (BackoffLimitExceeded) and the controller terminates
 *   every still-running pod — agents in the middle of other CI jobs. With `backoffLimitPerIndex`
 *   set, the API server defaults `backoffLimit` to 2147483647 (effectively unlimited), which is
 *   why we never set it.
 * - a `podFailurePolicy` rule with `action: FailJob`: it too fails the whole Job and kills the
 *   siblings. Our only rule is `Ignore` on the `DisruptionTarget` pod condition: an agent evicted
 *   or preempted before/while starting (node drain, spot reclaim, preemption) is not counted as a
 *   failure and its index gets a fresh pod, so the capacity we reserved is not lost.
 * Both `backoffLimitPerIndex` and `podFailurePolicy` require `restartPolicy: Never`.
 */
import { createHash } from 'node:crypto';
import type { V1Container, V1EnvVar, V1Job, V1Pod } from '@kubernetes/client-node';
import { defaultQueueAgents, type QueueAgents } from './routing.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'ci-agent-autoscaler';
export const QUEUE_LABEL = 'ci-autoscaler/queue';
export const DISPATCH_ID_LABEL = 'ci-autoscaler/dispatch-id';
/** Annotations holding the exact (unsanitised) queue name and dispatch id. */
export const QUEUE_ANNOTATION = 'ci-autoscaler/queue';
export const DISPATCH_ID_ANNOTATION = 'ci-autoscaler/dispatch-id';
/**
 * Which deployment of the scaler made a Job (its ledger table): two deployments sharing a
 * namespace neither count each other's agents nor collide on Job names.
 */
export const DEPLOYMENT_LABEL = 'ci-autoscaler/deployment';
export const DEPLOYMENT_ANNOTATION = 'ci-autoscaler/deployment';
/** Env var injected (first) into every container; templates reference it as $(CI_AUTOSCALER_QUEUE). */
export const QUEUE_ENV = 'CI_AUTOSCALER_QUEUE';
/**
 * What the queue's agents carry, injected (after CI_AUTOSCALER_QUEUE) into every container from
 * the same declaration the webhook matches jobs with (functions/core/routing.ts), comma-separated:
 * Buildkite agent tags, GitHub runner labels, GitLab runner tags. Templates reference them as
 * $(CI_AUTOSCALER_AGENT_TAGS) etc.; BUILDKITE_AGENT_TAGS itself is always overwritten with the
 * declared tags on a Buildkite queue, whatever the template says.
 */
export const AGENT_TAGS_ENV = 'CI_AUTOSCALER_AGENT_TAGS';
export const RUNNER_LABELS_ENV = 'CI_AUTOSCALER_RUNNER_LABELS';
export const RUNNER_TAGS_ENV = 'CI_AUTOSCALER_RUNNER_TAGS';
export const BUILDKITE_TAGS_ENV = 'BUILDKITE_AGENT_TAGS';
/** gitlab-runner's own variable for --token: its secretKeyRef is the queue's runnerTokenSecret. */
export const GITLAB_TOKEN_ENV = 'CI_SERVER_TOKEN';
const INJECTED = new Set([QUEUE_ENV, AGENT_TAGS_ENV, RUNNER_LABELS_ENV, RUNNER_TAGS_ENV]);

/** Label selector matching every Job this product created. */
export const AGENT_JOB_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

export interface AgentJobParams {
  readonly namespace: string;
  readonly queue: string;
  readonly dispatchId: string;
  readonly jobName: string;
  readonly count: number;
  readonly ttlSecondsAfterFinished: number;
  readonly activeDeadlineSeconds: number;
  /** The deployment's identity (see DEPLOYMENT_LABEL); omitted, the Job carries none. */
  readonly deployment?: string;
  /** What the queue's agents carry (default: the queue's defaults, any provider). */
  readonly agents?: QueueAgents;
  /** The queue's own GitLab runner Secret: replaces the Secret CI_SERVER_TOKEN reads, wherever it is read. */
  readonly runnerTokenSecret?: string;
}

function hash(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * A Kubernetes label value (<= 63 chars, [A-Za-z0-9._-], alphanumeric at both ends) for `value`.
 * A value that is already valid is returned unchanged; otherwise it is cleaned, shortened and
 * given an 8-hex-digit hash suffix of the original, so two different inputs never collide on the
 * cleaned form.
 */
export function labelSafe(value: string): string {
  if (value.length <= 63 && LABEL_VALUE.test(value)) return value;
  const cleaned = value
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 54)
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[^A-Za-z0-9]+$/, '');
  const suffix = hash(value, 8);
  return cleaned ? `${cleaned}-${suffix}` : suffix;
}

/**
 * Deterministic Job name for a dispatch: a DNS-1123 label (lowercase alphanumerics and '-',
 * alphanumeric at both ends) of at most 63 characters: `cia-<queue slug>-<hash of queue and
 * dispatch id>`. The same dispatch always gets the same name, so a retried create answers 409.
 * (63, not the 253 of a DNS subdomain, because the name is also the value of the `job-name`
 * label of every pod.)
 */
export function jobNameFor(queue: string, dispatchId: string, deployment = ''): string {
  const slug = queue
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 30)
    .replace(/-+$/, '');
  const digest = hash(
    deployment ? `${queue}\u0000${dispatchId}\u0000${deployment}` : `${queue}\u0000${dispatchId}`,
    16,
  );
  return slug ? `cia-${slug}-${digest}` : `cia-${digest}`;
}

function withAgentEnv(
  container: V1Container,
  queue: string,
  agents: QueueAgents,
  runnerTokenSecret: string | undefined,
): V1Container {
  const own = container.env ?? [];
  const overwriteTags =
    agents.provider === 'buildkite' ||
    (agents.provider === undefined && own.some((e) => e.name === BUILDKITE_TAGS_ENV));
  // The queue's Secret replaces the one CI_SERVER_TOKEN reads wherever the container reads it
  // (CI_SERVER_URL too): a queue with its own Secret needs no other.
  const tokenSecret = own.find((e) => e.name === GITLAB_TOKEN_ENV)?.valueFrom?.secretKeyRef?.name;
  const env: V1EnvVar[] = own
    .filter((e) => !INJECTED.has(e.name) && !(overwriteTags && e.name === BUILDKITE_TAGS_ENV))
    .map((e) =>
      runnerTokenSecret !== undefined && tokenSecret !== undefined && e.valueFrom?.secretKeyRef?.name === tokenSecret
        ? {
            ...e,
            valueFrom: { ...e.valueFrom, secretKeyRef: { ...e.valueFrom.secretKeyRef, name: runnerTokenSecret } },
          }
        : e,
    );
  // First in the list: Kubernetes expands $(VAR) only from variables defined EARLIER in the list.
  return {
    ...container,
    env: [
      { name: QUEUE_ENV, value: queue },
      { name: AGENT_TAGS_ENV, value: agents.agentTags.join(',') },
      { name: RUNNER_LABELS_ENV, value: agents.runnerLabels.join(',') },
      { name: RUNNER_TAGS_ENV, value: agents.runnerTags.join(',') },
      ...(overwriteTags ? [{ name: BUILDKITE_TAGS_ENV, value: agents.agentTags.join(',') }] : []),
      ...env,
    ],
  };
}

/**
 * The Job for one dispatch, built from a template (a batch/v1 Job whose pod template runs the
 * agent). The template is not modified.
 */
export function buildAgentJob(template: V1Job, params: AgentJobParams): V1Job {
  const { namespace, queue, dispatchId, jobName, count, ttlSecondsAfterFinished, activeDeadlineSeconds, deployment } =
    params;
  const agents = params.agents ?? defaultQueueAgents(queue);
  const withEnv = (c: V1Container) => withAgentEnv(c, queue, agents, params.runnerTokenSecret);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
  const t = structuredClone(template) as V1Job;
  const jobSpec = t.spec;
  const podTemplate = jobSpec?.template;
  const podSpec = podTemplate?.spec;
  if (!jobSpec || !podTemplate || !podSpec || !Array.isArray(podSpec.containers) || podSpec.containers.length === 0) {
    throw new TypeError('Job template has no pod template with containers');
  }
  const labels = {
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [QUEUE_LABEL]: labelSafe(queue),
    [DISPATCH_ID_LABEL]: labelSafe(dispatchId),
    ...(deployment ? { [DEPLOYMENT_LABEL]: labelSafe(deployment) } : {}),
  };
  const annotations = {
    [QUEUE_ANNOTATION]: queue,
    [DISPATCH_ID_ANNOTATION]: dispatchId,
    ...(deployment ? { [DEPLOYMENT_ANNOTATION]: deployment } : {}),
  };
  // Fields that would break our guarantees are dropped from the template's spec: a
  // successPolicy can declare the Job done (and stop the other agents) once some indexes
  // succeed; managedBy hands the Job to another controller that need not honour
  // backoffLimitPerIndex; podReplacementPolicy TerminatingOrFailed would start a second agent
  // for an index whose first one is still stopping. Each breaks "one agent per index".
  const {
    backoffLimit: _b,
    maxFailedIndexes: _m,
    selector: _s,
    manualSelector: _ms,
    successPolicy: _sp,
    podReplacementPolicy: _pr,
    managedBy: _mb,
    ...templateSpec
  } = jobSpec;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: jobName,
      namespace,
      labels: { ...(t.metadata?.labels ?? {}), ...labels },
      annotations: { ...(t.metadata?.annotations ?? {}), ...annotations },
    },
    spec: {
      ...templateSpec,
      completionMode: 'Indexed',
      completions: count,
      parallelism: count,
      backoffLimitPerIndex: 0,
      podReplacementPolicy: 'Failed',
      podFailurePolicy: {
        rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }],
      },
      ttlSecondsAfterFinished,
      activeDeadlineSeconds,
      suspend: false,
      template: {
        ...podTemplate,
        metadata: {
          ...(podTemplate.metadata ?? {}),
          labels: { ...(podTemplate.metadata?.labels ?? {}), ...labels },
          annotations: { ...(podTemplate.metadata?.annotations ?? {}), ...annotations },
        },
        spec: {
          ...podSpec,
          restartPolicy: 'Never',
          containers: podSpec.containers.map(withEnv),
          ...(podSpec.initContainers ? { initContainers: podSpec.initContainers.map(withEnv) } : {}),
        },
      },
    },
  };
}

function hasTrueCondition(job: V1Job, types: readonly string[]): boolean {
  return (job.status?.conditions ?? []).some((c) => types.includes(c.type) && c.status === 'True');
}

/**
 * True when the Job is over: `Complete` or `Failed`, or their forerunners `SuccessCriteriaMet` /
 * `FailureTarget` (Kubernetes >= 1.31 sets these first and the terminal condition only after the
 * last pod has terminated; from then on no pod of the Job takes new work).
 */
export function isFinished(job: V1Job): boolean {
  return hasTrueCondition(job, ['Complete', 'Failed', 'SuccessCriteriaMet', 'FailureTarget']);
}

/**
 * Agents of this Job that are provisioned and not finished — Pending pods included (they are
 * supply that is on its way; not counting them over-provisions):
 *  - 0 once `Complete` or `Failed`;
 *  - while `SuccessCriteriaMet` / `FailureTarget` (the Job is over, its pods are being
 *    stopped): the pods not gone yet (active + terminating), so agents shutting down (a
 *    deadline hit mid-job has a grace period) still count against MAX_AGENTS;
 *  - else max(0, min(parallelism, completions - succeeded - failed)).
 */
export function liveAgents(job: V1Job): number {
  if (hasTrueCondition(job, ['Complete', 'Failed'])) return 0;
  if (isFinished(job)) return (job.status?.active ?? 0) + (job.status?.terminating ?? 0);
  const parallelism = job.spec?.parallelism ?? 1;
  const completions = job.spec?.completions ?? parallelism;
  const succeeded = job.status?.succeeded ?? 0;
  const failed = job.status?.failed ?? 0;
  return Math.max(0, Math.min(parallelism, completions - succeeded - failed));
}

/** The exact queue a Job serves (annotation), falling back to the label. */
export function queueOf(job: V1Job): string | undefined {
  return job.metadata?.annotations?.[QUEUE_ANNOTATION] ?? job.metadata?.labels?.[QUEUE_LABEL];
}

/** The exact dispatch id of a Job (annotation), falling back to the label. */
export function dispatchIdOf(job: V1Job): string | undefined {
  return job.metadata?.annotations?.[DISPATCH_ID_ANNOTATION] ?? job.metadata?.labels?.[DISPATCH_ID_LABEL];
}

/** The exact deployment that made a Job (annotation), falling back to the label. */
export function deploymentOf(job: V1Job): string | undefined {
  return job.metadata?.annotations?.[DEPLOYMENT_ANNOTATION] ?? job.metadata?.labels?.[DEPLOYMENT_LABEL];
}

/** The Job a pod belongs to, from the labels the Job controller sets (old and new label). */
export const jobNameOf = (pod: { metadata?: { labels?: Record<string, string> } }): string | undefined =>
  pod.metadata?.labels?.['batch.kubernetes.io/job-name'] ?? pod.metadata?.labels?.['job-name'];

/** A pod Running with the Ready condition (an agent up). */
export const isReady = (pod: V1Pod): boolean =>
  pod.status?.phase === 'Running' &&
  (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
