/**
 * A simulated Kubernetes cluster holding our agent Jobs, as the scaler's ClusterPort sees it:
 * createJob answers 'exists' on a duplicate name (409), listAgentJobs returns batch/v1 Jobs whose
 * status is kept as the Job controller would (active = pods not terminated and not terminating,
 * ready, terminating = pods deleted and not ended yet, succeeded, failed, startTime, Complete/Failed condition once every index is done; the Job is deleted
 * ttlSecondsAfterFinished later). Each index of an Indexed Job is one agent pod of the World.
 */
import type { V1Job, V1JobCondition } from '@kubernetes/client-node';
import type { ClusterPort } from '../../functions/scaler/ports.js';
import type { VirtualClock } from './clock.js';
import { type AgentLifecycle, type CiJob, EPHEMERAL_AGENT, type Pod, type PodOwner, type World } from './world.js';

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
    /** How the agents live (ours-warm: no idle timeout, the scaler deletes surplus idle agents). */
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
   * The scaler's stop of surplus agents (decision.ts scaleDown), as the product does it: it lists
   * the queue's agent pods and deletes up to `n` of ours that are Running and Ready and not
   * terminating, oldest start first, with a grace period as long as the Job's deadline. It cannot
   * tell idle from busy: an idle agent exits at once (plus the exit time), a busy one finishes its
   * CI job and exits as it would have (World.stopPod); both end Succeeded. Returns the pods
   * deleted.
   */
  stopAgents(queue: string, n: number): Pod[] {
    this.count('list', Math.max(1, Math.ceil((this.world.inFlightByQueue.get(queue) ?? 0) / this.pageSize)));
    const picked = this.world
      .runningAgents(queue)
      .filter((p) => p.owner === this)
      .slice(0, Math.max(0, n));
    if (picked.length > 0) this.count('delete', picked.length);
    for (const pod of picked) this.world.stopPod(pod);
    return picked;
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
          for (const p of sim.pods) this.byPod.delete(p);
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
