/**
 * The simulated world every policy runs in: the CI system (jobs waiting on queues, webhooks), the
 * agent pods (start-up delay, take the oldest waiting job of their queue, run it, exit; or exit
 * after an idle timeout), and the accounting (waits, agent-seconds, in flight over time).
 *
 * Pods belong to an owner (a simulated Kubernetes Job) that is told when each pod ends.
 */
import { eventId, type JobEvent, type JobEventKind } from '../../functions/core/job-event.js';
import type { VirtualClock } from './clock.js';
import { hashUnit, type TraceJob } from './trace.js';

export interface WorldParams {
  /** Pod created -> agent ready to take a job. */
  readonly podStartupSeconds: number;
  /** An agent with no job for this long exits (buildkite-agent --disconnect-after-idle-timeout). */
  readonly idleTimeoutSeconds: number;
  /** Job finished -> agent pod terminated and counted in the Job's status. */
  readonly agentExitSeconds: number;
  /** CI event -> webhook received -> message visible in the queue. */
  readonly webhookLatencySeconds: number;
  /** Extra random delay (0..this) of the webhooks of jobs marked `reorder`, and of duplicates. */
  readonly reorderWindowSeconds: number;
  readonly seed: number;
}

export type CiJobState = 'future' | 'waiting' | 'running' | 'finished' | 'cancelled';

export interface CiJob {
  readonly trace: TraceJob;
  state: CiJobState;
  /** First time an agent took it (seconds). */
  startedAt?: number;
  /** Start of the current run (seconds). */
  runStart?: number;
  endedAt?: number;
  /** Runs interrupted by an agent killed mid-job (long-lived Job scale-down). */
  interrupted: number;
  pod?: Pod | undefined;
  finishTimer: number;
}

export interface PodOwner {
  onPodEnd(pod: Pod, outcome: 'succeeded' | 'failed'): void;
}

export type PodState = 'pending' | 'idle' | 'busy' | 'exiting' | 'done';

export interface Pod {
  readonly id: number;
  readonly queue: string;
  readonly owner: PodOwner;
  readonly createdAt: number;
  readyAt?: number;
  idleSince?: number;
  endedAt?: number;
  state: PodState;
  outcome?: 'succeeded' | 'failed';
  job?: CiJob | undefined;
  /** The one CI job this agent acquires (job-per-ci-job), instead of any job of its queue. */
  readonly acquire?: CiJob;
  /** How this agent lives (default: exits after one job, or after the idle timeout). */
  readonly lifecycle: AgentLifecycle;
  /** Invalidates pending timers of the pod (idle timeout) when its state moves on. */
  epoch: number;
  /**
   * Deleted through the API with a grace period (stopPod): terminating from then on, no longer
   * a stop candidate; it exits once idle, or after the CI job it holds.
   */
  stoppedAt?: number;
}

/**
 * How an agent process lives:
 * - ephemeral (default): exits after one job (buildkite-agent --disconnect-after-job, GitHub
 *   --ephemeral); `idleTimeout` false: waits for a job forever (an ARC ephemeral runner), true:
 *   exits after the world's idle timeout (--disconnect-after-idle-timeout).
 * - persistent: takes job after job and never exits by itself (a github-aws-runners runner
 *   without --ephemeral): only its owner's scale-down ends it.
 */
export interface AgentLifecycle {
  readonly ephemeral: boolean;
  readonly idleTimeout: boolean;
}

export const EPHEMERAL_AGENT: AgentLifecycle = { ephemeral: true, idleTimeout: true };

export interface SeriesPoint {
  readonly t: number;
  readonly pending: number;
  readonly inFlight: number;
  readonly running: number;
}

export type WebhookSink = (event: JobEvent) => void;

const sec = (ms: number) => ms / 1000;

export class World {
  readonly jobs: CiJob[];
  readonly pods: Pod[] = [];
  private readonly waiting = new Map<string, CiJob[]>();
  private readonly idle = new Map<string, Pod[]>();
  private nextPodId = 1;
  private open: number;
  readonly series: SeriesPoint[] = [];
  readonly inFlightByQueue = new Map<string, number>();
  readonly maxInFlightByQueue = new Map<string, number>();
  maxInFlight = 0;
  private inFlightTotal = 0;
  /** Seconds of CI job runs (including runs later interrupted). */
  usedSeconds = 0;
  sink: WebhookSink | undefined;
  /**
   * Called at once on each transition of a CI job (no webhook latency, no reordering): what the
   * CI service itself knows, e.g. the Actions message session ARC's listener reads.
   */
  readonly jobChanges: ((job: CiJob, kind: JobEventKind) => void)[] = [];
  /** Called when every CI job is terminal. */
  onAllTerminal: (() => void) | undefined;

  constructor(
    readonly clock: VirtualClock,
    readonly params: WorldParams,
    trace: readonly TraceJob[],
  ) {
    this.jobs = trace.map((t) => ({ trace: t, state: 'future', interrupted: 0, finishTimer: 0 }));
    this.open = this.jobs.length;
    for (const job of this.jobs) {
      clock.at(job.trace.at * 1000, () => this.arrive(job));
      const cancelAt = job.trace.cancelAt;
      if (cancelAt !== undefined) clock.at(Math.max(cancelAt, job.trace.at) * 1000, () => this.cancel(job));
    }
    if (this.open === 0) clock.at(0, () => this.onAllTerminal?.());
  }

  get nowSeconds(): number {
    return sec(this.clock.now);
  }

  /** Samples pending / in flight / running every `everySeconds` from 0. */
  startSampling(everySeconds: number): void {
    const sample = () => {
      let pending = 0;
      let running = 0;
      for (const list of this.waiting.values()) pending += list.length;
      for (const j of this.jobs) if (j.state === 'running') running++;
      this.series.push({ t: this.nowSeconds, pending, inFlight: this.inFlightTotal, running });
      this.clock.after(everySeconds * 1000, sample);
    };
    this.clock.at(0, sample);
  }

  // --- CI side ------------------------------------------------------------------------------

  private arrive(job: CiJob): void {
    if (job.state !== 'future') return;
    job.state = 'waiting';
    this.enqueueWaiting(job);
    this.emit(job, 'scheduled');
    this.dispatchIdle(job.trace.queue);
  }

  private enqueueWaiting(job: CiJob): void {
    const list = this.waiting.get(job.trace.queue) ?? [];
    // Oldest first by scheduled time (a re-queued job keeps its place).
    let i = list.length;
    while (i > 0 && (list[i - 1]?.trace.at ?? 0) > job.trace.at) i--;
    list.splice(i, 0, job);
    this.waiting.set(job.trace.queue, list);
  }

  private removeWaiting(job: CiJob): void {
    const list = this.waiting.get(job.trace.queue);
    const i = list?.indexOf(job) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
  }

  private cancel(job: CiJob): void {
    if (job.state === 'waiting') {
      this.removeWaiting(job);
      this.terminal(job, 'cancelled');
      this.emit(job, 'cancelled');
    } else if (job.state === 'running') {
      this.endRun(job, 'cancelled');
    }
  }

  private terminal(job: CiJob, state: 'finished' | 'cancelled'): void {
    job.state = state;
    job.endedAt = this.nowSeconds;
    this.open--;
    if (this.open === 0) this.onAllTerminal?.();
  }

  /** Number of CI jobs waiting / running per queue (what a CI API would report). */
  ciCounts(queue: string): { waiting: number; running: number } {
    let running = 0;
    for (const j of this.jobs) if (j.state === 'running' && j.trace.queue === queue) running++;
    return { waiting: this.waiting.get(queue)?.length ?? 0, running };
  }

  /** Delivers a webhook for the job's transition (plus duplicates, possibly out of order). */
  private emit(job: CiJob, kind: JobEventKind): void {
    for (const f of this.jobChanges) f(job, kind);
    const t = job.trace;
    const copies = 1 + (t.duplicates ?? 0);
    const occurredAt = new Date(this.clock.epochNow()).toISOString();
    for (let copy = 0; copy < copies; copy++) {
      const jitter =
        t.reorder || copy > 0
          ? hashUnit(this.params.seed, `${t.id}\n${kind}\n${copy}`) * this.params.reorderWindowSeconds
          : 0;
      const delayMs = (this.params.webhookLatencySeconds + jitter) * 1000;
      this.clock.after(delayMs, () => {
        this.sink?.({
          id: eventId('buildkite', t.id, kind),
          provider: 'buildkite',
          jobId: t.id,
          queue: t.queue,
          kind,
          occurredAt,
          receivedAt: new Date(this.clock.epochNow()).toISOString(),
          trace: { pipeline: 'simulated' },
        });
      });
    }
  }

  // --- agent pods ---------------------------------------------------------------------------

  /** A new agent pod (already scheduled by its Job): ready after the start-up delay. */
  startPod(queue: string, owner: PodOwner, acquire?: CiJob, lifecycle: AgentLifecycle = EPHEMERAL_AGENT): Pod {
    const pod: Pod = {
      id: this.nextPodId++,
      queue,
      owner,
      createdAt: this.nowSeconds,
      state: 'pending',
      epoch: 0,
      lifecycle,
      ...(acquire ? { acquire } : {}),
    };
    this.pods.push(pod);
    this.addInFlight(queue, 1);
    this.clock.after(this.params.podStartupSeconds * 1000, () => this.ready(pod));
    return pod;
  }

  private addInFlight(queue: string, n: number): void {
    const now = (this.inFlightByQueue.get(queue) ?? 0) + n;
    this.inFlightByQueue.set(queue, now);
    this.inFlightTotal += n;
    if (now > (this.maxInFlightByQueue.get(queue) ?? 0)) this.maxInFlightByQueue.set(queue, now);
    if (this.inFlightTotal > this.maxInFlight) this.maxInFlight = this.inFlightTotal;
  }

  private ready(pod: Pod): void {
    if (pod.state !== 'pending') return;
    pod.readyAt = this.nowSeconds;
    if (pod.acquire) {
      // buildkite-agent --acquire-job: runs exactly that job, or exits if it is no longer waiting.
      if (pod.acquire.state === 'waiting') this.take(pod, pod.acquire);
      else this.endPod(pod, 'succeeded');
      return;
    }
    const next = this.waiting.get(pod.queue)?.[0];
    if (next) this.take(pod, next);
    else this.becomeIdle(pod);
  }

  private becomeIdle(pod: Pod): void {
    pod.state = 'idle';
    pod.idleSince = this.nowSeconds;
    const epoch = ++pod.epoch;
    const list = this.idle.get(pod.queue) ?? [];
    list.push(pod);
    this.idle.set(pod.queue, list);
    if (!pod.lifecycle.idleTimeout) return;
    this.clock.after(this.params.idleTimeoutSeconds * 1000, () => {
      if (pod.state === 'idle' && pod.epoch === epoch) this.endPod(pod, 'succeeded');
    });
  }

  /** Idle agents of a queue, longest idle first. */
  idleAgents(queue: string): readonly Pod[] {
    return this.idle.get(queue) ?? [];
  }

  /**
   * The pod is deleted through the API with a grace period long enough for any CI job (a graceful
   * stop, not an eviction): its agent gets SIGTERM and stops if idle, else finishes the CI job it
   * holds and exits as it would have; either way it exits 0 (Succeeded). Not re-queued, never
   * interrupted; the Job does not replace it.
   */
  stopPod(pod: Pod): void {
    if (pod.state === 'done' || pod.stoppedAt !== undefined) return;
    pod.stoppedAt = this.nowSeconds;
    if (pod.state === 'idle' || pod.state === 'pending') {
      this.removeIdle(pod);
      pod.state = 'exiting';
      pod.epoch++;
      this.clock.after(this.params.agentExitSeconds * 1000, () => this.endPod(pod, 'succeeded'));
    }
    // busy: endRun ends it after its CI job; exiting: it is on its way out already.
  }

  /** The CI jobs waiting on a queue, oldest first (what a CI API's "scheduled jobs" returns). */
  waitingJobs(queue: string): readonly CiJob[] {
    return this.waiting.get(queue) ?? [];
  }

  private dispatchIdle(queue: string): void {
    const idle = this.idle.get(queue);
    const waiting = this.waiting.get(queue);
    for (;;) {
      const pod = idle?.[0];
      const job = waiting?.[0];
      if (!pod || !job) return;
      this.take(pod, job);
    }
  }

  private take(pod: Pod, job: CiJob): void {
    this.removeIdle(pod);
    this.removeWaiting(job);
    pod.state = 'busy';
    pod.epoch++;
    pod.job = job;
    job.pod = pod;
    job.state = 'running';
    job.startedAt ??= this.nowSeconds;
    job.runStart = this.nowSeconds;
    this.emit(job, 'started');
    const run = ++job.finishTimer;
    this.clock.after(job.trace.duration * 1000, () => {
      if (job.state === 'running' && job.finishTimer === run) this.endRun(job, 'finished');
    });
  }

  private removeIdle(pod: Pod): void {
    const list = this.idle.get(pod.queue);
    const i = list?.indexOf(pod) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
  }

  /** The running job ends (finished, or cancelled while running); its agent exits. */
  private endRun(job: CiJob, how: 'finished' | 'cancelled'): void {
    const pod = job.pod;
    this.usedSeconds += this.nowSeconds - (job.runStart ?? this.nowSeconds);
    job.pod = undefined;
    this.terminal(job, how);
    this.emit(job, 'finished');
    if (pod) {
      pod.job = undefined;
      if (!pod.lifecycle.ephemeral && pod.stoppedAt === undefined) {
        // A persistent runner goes back to waiting for the next job of its queue.
        const next = this.waiting.get(pod.queue)?.[0];
        if (next) this.take(pod, next);
        else this.becomeIdle(pod);
        return;
      }
      pod.state = 'exiting';
      this.clock.after(this.params.agentExitSeconds * 1000, () => this.endPod(pod, 'succeeded'));
    }
  }

  /** Kubernetes deletes the pod (scale-down): a job it was running is interrupted and re-queued. */
  killPod(pod: Pod): void {
    if (pod.state === 'done') return;
    const job = pod.job;
    if (job && job.state === 'running') {
      this.usedSeconds += this.nowSeconds - (job.runStart ?? this.nowSeconds);
      job.interrupted++;
      job.finishTimer++;
      job.pod = undefined;
      job.state = 'waiting';
      pod.job = undefined;
      this.enqueueWaiting(job);
    }
    this.endPod(pod, 'failed');
    if (job) {
      this.dispatchIdle(job.trace.queue);
    }
  }

  private endPod(pod: Pod, outcome: 'succeeded' | 'failed'): void {
    if (pod.state === 'done') return;
    this.removeIdle(pod);
    pod.state = 'done';
    pod.epoch++;
    pod.outcome = outcome;
    pod.endedAt = this.nowSeconds;
    this.addInFlight(pod.queue, -1);
    pod.owner.onPodEnd(pod, outcome);
  }

  /** Agent-seconds provisioned up to `untilSeconds` (pods still alive are counted up to then). */
  provisionedSeconds(untilSeconds: number): number {
    let total = 0;
    for (const p of this.pods) total += Math.max(0, Math.min(p.endedAt ?? untilSeconds, untilSeconds) - p.createdAt);
    return total;
  }

  /** Used agent-seconds up to `untilSeconds` (runs still going are counted up to then). */
  usedUntil(untilSeconds: number): number {
    let extra = 0;
    for (const j of this.jobs)
      if (j.state === 'running') extra += Math.max(0, untilSeconds - (j.runStart ?? untilSeconds));
    return this.usedSeconds + extra;
  }
}
