/**
 * A simulated Kubernetes cluster holding our agent Jobs, as the scaler's ClusterPort sees it:
 * createJob answers 'exists' on a duplicate name (409), listAgentJobs returns batch/v1 Jobs whose
 * status is kept as the Job controller would (active = pods not terminated and not terminating,
 * ready, terminating = pods deleted and not ended yet, succeeded, failed, startTime, Complete/Failed condition once every index is done; the Job is deleted
 * ttlSecondsAfterFinished later). Each index of an Indexed Job is one agent pod of the World.
 */
import type { V1Job, V1JobCondition, V1Pod } from '@kubernetes/client-node';
import { JOB_NAMES_PER_LIST } from '../../functions/adapters/kubernetes/cluster.js';
import type { ClusterPort, PodQuery } from '../../functions/scaler/ports.js';
import type { VirtualClock } from './clock.js';
import { type AgentLifecycle, type CiJob, EPHEMERAL_AGENT, type Pod, type PodOwner, type World } from './world.js';

/** An Indexed Job's pod name: <job>-<index>-<suffix>. */
const podName = (jobName: string, index: number, pod: Pod) => `${jobName}-${index}-${pod.id}`;
const podUid = (pod: Pod) => `uid-pod-${pod.id}`;

interface SimJob {
  readonly job: V1Job;
  readonly queue: string;
  readonly pods: Pod[];
  readonly createdAt: number;
  finishedAt?: number;
}

export interface ApiCounter {
  kube: Record<string, number>;
}

export class SimCluster implements ClusterPort, PodOwner {
  private readonly jobs = new Map<string, SimJob>();
  private readonly byPod = new Map<Pod, SimJob>();
  /** Pods by the name their view gives them (listAgentPods). */
  private readonly podsByName = new Map<string, Pod>();
  /** The grace period each deleted pod was given. */
  private readonly grace = new Map<Pod, number>();
  /** Jobs ever created. */
  created = 0;
  /** Page size of a list call (the adapter's `limit`): one API call per page. */
  pageSize = 500;

  constructor(
    private readonly clock: VirtualClock,
    private readonly world: World,
    private readonly calls: ApiCounter,
    private readonly queueOf: (job: V1Job) => string | undefined,
    /** The CI job a Job's agents acquire (job-per-ci-job); none: any job of the queue. */
    private readonly acquireOf: (job: V1Job) => CiJob | undefined = () => undefined,
    /** How the agents live (ours-warm: no idle timeout, the scaler stops surplus agents). */
    private readonly lifecycle: AgentLifecycle = EPHEMERAL_AGENT,
  ) {}

  private count(verb: string, n = 1): void {
    this.calls.kube[verb] = (this.calls.kube[verb] ?? 0) + n;
  }

  async listAgentJobs(): Promise<V1Job[]> {
    this.count('list', Math.max(1, Math.ceil(this.jobs.size / this.pageSize)));
    return [...this.jobs.values()].map((j) => this.view(j));
  }

  async createJob(job: V1Job): Promise<'created' | 'exists'> {
    this.count('create');
    const name = job.metadata?.name;
    if (!name) throw new Error('Job has no name');
    if (this.jobs.has(name)) return 'exists';
    const queue = this.queueOf(job);
    if (!queue) throw new Error(`Job ${name} has no queue`);
    const completions = job.spec?.completions ?? job.spec?.parallelism ?? 1;
    const parallelism = Math.min(job.spec?.parallelism ?? 1, completions);
    const sim: SimJob = { job: structuredClone(job), queue, pods: [], createdAt: this.world.nowSeconds };
    this.jobs.set(name, sim);
    this.created++;
    // Indexed, completions = parallelism: one pod per index, all at once; no retries
    // (backoffLimitPerIndex 0), so a failed index stays failed.
    for (let i = 0; i < parallelism; i++) {
      const pod = this.world.startPod(queue, this, this.acquireOf(job), this.lifecycle);
      sim.pods.push(pod);
      this.byPod.set(pod, sim);
    }
    return 'created';
  }

  /**
   * The agent pods of our Jobs as the Pods API lists them (ClusterPort.listAgentPods): one list
   * call per JOB_NAMES_PER_LIST Job names (the adapter's label selectors). Phase Pending until the agent is up, Running (Ready) until it has
   * exited, then Succeeded or Failed; a deleted pod keeps its phase, with deletionTimestamp
   * (= the delete + its grace period) and deletionGracePeriodSeconds, until it ends.
   */
  async listAgentPods(query?: PodQuery): Promise<V1Pod[]> {
    const names = query ? [...new Set(query.jobNames)] : [...this.jobs.keys()];
    this.count('list', Math.max(1, Math.ceil(names.length / JOB_NAMES_PER_LIST)));
    const pods: V1Pod[] = [];
    for (const name of names) {
      const sim = this.jobs.get(name);
      if (!sim) continue;
      sim.pods.forEach((pod, index) => {
        if (query?.firstIndexes !== undefined && index >= query.firstIndexes) return;
        const view = this.podView(name, index, pod);
        if (!query?.phase || view.status?.phase === query.phase) pods.push(view);
      });
    }
    return pods;
  }

  /**
   * Deletes an agent pod with a grace period (ClusterPort.deletePod of the graceful stop): its agent
   * gets SIGTERM (World.stopPod); 'gone' when no pod has that name and uid (404, or 409 on the uid
   * precondition).
   */
  async deletePod(ref: { readonly name: string; readonly uid: string }, gracePeriodSeconds: number) {
    this.count('delete');
    const pod = this.podsByName.get(ref.name);
    if (!pod || podUid(pod) !== ref.uid || !this.byPod.has(pod)) return 'gone' as const;
    if (pod.state !== 'done' && pod.stoppedAt === undefined) this.grace.set(pod, gracePeriodSeconds);
    this.world.stopPod(pod);
    return 'deleted' as const;
  }

  private podView(jobName: string, index: number, pod: Pod): V1Pod {
    const epoch = this.clock.epochMs;
    const iso = (s: number) => new Date(epoch + s * 1000);
    const name = podName(jobName, index, pod);
    this.podsByName.set(name, pod);
    const phase =
      pod.state === 'done'
        ? pod.outcome === 'failed'
          ? 'Failed'
          : 'Succeeded'
        : pod.readyAt !== undefined
          ? 'Running'
          : 'Pending';
    const grace = this.grace.get(pod);
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        uid: podUid(pod),
        labels: { 'batch.kubernetes.io/job-name': jobName, 'batch.kubernetes.io/job-completion-index': String(index) },
        creationTimestamp: iso(pod.createdAt),
        ...(pod.stoppedAt !== undefined && pod.state !== 'done'
          ? {
              deletionTimestamp: iso(pod.stoppedAt + (grace ?? 0)),
              deletionGracePeriodSeconds: grace ?? 0,
            }
          : {}),
      },
      status: {
        phase,
        startTime: iso(pod.createdAt),
        conditions: [{ type: 'Ready', status: phase === 'Running' && pod.readyAt !== undefined ? 'True' : 'False' }],
      },
    };
  }

  onPodEnd(pod: Pod): void {
    const sim = this.byPod.get(pod);
    if (!sim || sim.finishedAt !== undefined) return;
    if (sim.pods.every((p) => p.state === 'done')) {
      sim.finishedAt = this.world.nowSeconds;
      const ttl = sim.job.spec?.ttlSecondsAfterFinished;
      const name = sim.job.metadata?.name;
      if (ttl !== undefined && name !== undefined) {
        this.clock.after(ttl * 1000, () => {
          this.jobs.delete(name);
          sim.pods.forEach((p, i) => {
            this.byPod.delete(p);
            this.podsByName.delete(podName(name, i, p));
          });
        });
      }
    }
  }

  private view(sim: SimJob): V1Job {
    const job = structuredClone(sim.job);
    const epoch = this.clock.epochMs;
    const iso = (s: number) => new Date(epoch + s * 1000);
    let active = 0;
    let ready = 0;
    let succeeded = 0;
    let failed = 0;
    let terminating = 0;
    for (const p of sim.pods) {
      if (p.state === 'done') {
        if (p.outcome === 'failed') failed++;
        else succeeded++;
      } else if (p.stoppedAt !== undefined) {
        // Deleted, not gone yet: status.active and status.ready leave out terminating pods.
        terminating++;
      } else {
        active++;
        if (p.state !== 'pending') ready++;
      }
    }
    const conditions: V1JobCondition[] = [];
    if (sim.finishedAt !== undefined) {
      const type = failed > 0 ? 'Failed' : 'Complete';
      conditions.push({
        type,
        status: 'True',
        lastTransitionTime: iso(sim.finishedAt),
        lastProbeTime: iso(sim.finishedAt),
        ...(failed > 0 ? { reason: 'FailedIndexes' } : {}),
      });
    }
    job.metadata = {
      ...job.metadata,
      uid: `uid-${job.metadata?.name}`,
      creationTimestamp: iso(sim.createdAt),
      resourceVersion: String(Math.round(this.clock.now)),
    };
    job.status = {
      startTime: iso(sim.createdAt),
      active,
      ready,
      succeeded,
      failed,
      ...(terminating > 0 ? { terminating } : {}),
      ...(conditions.length > 0 && sim.finishedAt !== undefined
        ? { conditions, completionTime: iso(sim.finishedAt) }
        : {}),
    };
    return job;
  }
}
