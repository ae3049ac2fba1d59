/**
 * Back-off under randomized start failures: seeded schedules of one queue's CI demand (bursts),
 * agents that start, take jobs, idle out or fail at start, and the REAL back-off
 * (functions/core/backoff.ts) fed as the scaler feeds it every tick: `select` on the Job list,
 * the pods it asks for (Failed pods; the first POD_SAMPLE_INDEXES indexes of a sample) to
 * `observe`, then `gate` caps what the tick creates and `created` names the probe. Production
 * timings (AGENT_BACKOFF_BASE_SECONDS 30, MAX 600, a 60 s start window, a 30 s grace).
 *
 * What it measures per schedule: the longest time the back-off held CI jobs with no agent for
 * them (more jobs waiting than agents starting or idle, and the gate let fewer agents be made
 * than wanted, tick after tick), the most such jobs then, and the Jobs created.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { type JobStatusView, POD_SAMPLE_INDEXES, QueueBackoff } from '../../functions/core/backoff.js';
import { rng } from '../../tools/simulate/trace.js';

export const POLICY = { baseMs: 30_000, maxMs: 600_000, unschedulableMs: 300_000 } as const;
/** The scaler's tick. */
export const TICK_MS = 10_000;
const QUEUE = 'q';
/** High enough that only the back-off ever holds demand back. */
const MAX_AGENTS = 1000;
const IDLE_TIMEOUT_MS = 30_000;

export interface BackoffSchedule {
  readonly seed: number;
  /** Probability that an agent fails at start (exits 1 a few seconds after it started). */
  readonly failRate: number;
  /** Every agent fails at start (a revoked token, a bad entrypoint: each failed index frees its slot). */
  readonly persistent?: boolean;
  readonly durationMs?: number;
}

export interface BackoffRun {
  /** Longest stretch of ticks in which the gate held back agents for CI jobs that had none (ms). */
  readonly longestStallMs: number;
  /** CI jobs waiting at the end of that stretch. */
  readonly waitingInStall: number;
  readonly jobsCreated: number;
  /** When the first Job was created (ms). */
  readonly firstJobAt: number;
  readonly agentsMade: number;
  readonly agentsFailed: number;
  readonly ciJobsRun: number;
}

type PodState = 'pending' | 'running' | 'idle' | 'failed' | 'succeeded';

interface Pod {
  readonly name: string;
  readonly index: number;
  readonly created: number;
  state: PodState;
  /** When the container started (running, or the failure at start). */
  startedAt?: number;
  endedAt?: number;
  /** Set at creation: when it becomes ready, or fails at start. */
  readonly readyAt: number;
  readonly failsAt?: number;
  busyUntil?: number;
  idleSince?: number;
}

interface Job {
  readonly name: string;
  readonly created: number;
  readonly pods: Pod[];
}

export function runBackoffSchedule(s: BackoffSchedule): BackoffRun {
  const random = rng(s.seed);
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo));
  const duration = s.durationMs ?? 900_000;
  const backoff = new QueueBackoff(POLICY);
  // CI demand: 3-6 bursts of 10-45 jobs over the first two thirds of the run, each job 1-5 min.
  const arrivals: { at: number; runMs: number }[] = [];
  for (let b = between(3, 7); b > 0; b--) {
    const at = between(0, (duration * 2) / 3);
    for (let n = between(10, 46); n > 0; n--)
      arrivals.push({ at: at + between(0, 20_000), runMs: between(60_000, 300_000) });
  }
  arrivals.sort((a, b) => a.at - b.at);
  const waiting: { runMs: number }[] = [];
  const jobs: Job[] = [];
  let jobSeq = 0;
  let firstJobAt = 0;
  let agentsMade = 0;
  let agentsFailed = 0;
  let ciJobsRun = 0;
  let stallFrom: number | undefined;
  let longestStallMs = 0;
  let waitingInStall = 0;
  const pods = () => jobs.flatMap((j) => j.pods);
  const live = (p: Pod) => p.state === 'pending' || p.state === 'running' || p.state === 'idle';

  /** The world up to `now` in 1 s steps: arrivals, starts, failures, jobs taken and finished. */
  const advance = (from: number, to: number) => {
    for (let t = from + 1_000; t <= to; t += 1_000) {
      while (arrivals.length > 0 && (arrivals[0]?.at ?? Infinity) <= t)
        waiting.push(arrivals.shift() as { runMs: number });
      for (const p of pods()) {
        if (p.state === 'pending' && p.failsAt !== undefined && t >= p.failsAt) {
          p.state = 'failed';
          p.endedAt = t;
          agentsFailed++;
        } else if (p.state === 'pending' && p.failsAt === undefined && t >= p.readyAt) {
          p.state = 'idle';
          p.startedAt = p.readyAt;
          p.idleSince = t;
        }
        if (p.state === 'running' && t >= (p.busyUntil ?? 0)) {
          p.state = 'idle';
          p.idleSince = t;
        }
        if (p.state === 'idle') {
          const job = waiting.shift();
          if (job) {
            p.state = 'running';
            p.busyUntil = t + job.runMs;
            ciJobsRun++;
          } else if (t - (p.idleSince ?? t) >= IDLE_TIMEOUT_MS) {
            p.state = 'succeeded';
            p.endedAt = t;
          }
        }
      }
    }
  };

  const view = (j: Job): JobStatusView => ({
    name: j.name,
    queue: QUEUE,
    created: j.created,
    active: j.pods.filter(live).length,
    ready: j.pods.filter((p) => p.state === 'running' || p.state === 'idle').length,
    failed: j.pods.filter((p) => p.state === 'failed').length,
    succeeded: j.pods.filter((p) => p.state === 'succeeded').length,
  });

  const v1 = (j: Job, p: Pod): V1Pod => {
    const metadata = {
      name: p.name,
      creationTimestamp: new Date(p.created),
      labels: { 'batch.kubernetes.io/job-name': j.name },
      annotations: { 'ci-autoscaler/queue': QUEUE },
    };
    const container = { name: 'agent', image: 'agent', imageID: '', restartCount: 0 };
    switch (p.state) {
      case 'pending':
        return {
          metadata,
          status: {
            phase: 'Pending',
            containerStatuses: [
              {
                ...container,
                ready: false,
                state: { waiting: { reason: 'ContainerCreating' } },
              },
            ],
          },
        };
      case 'failed':
        return {
          metadata,
          status: {
            phase: 'Failed',
            startTime: new Date(p.created),
            containerStatuses: [
              {
                ...container,
                ready: false,
                state: {
                  terminated: {
                    exitCode: 1,
                    reason: 'Error',
                    startedAt: new Date(p.endedAt ?? p.created),
                    finishedAt: new Date(p.endedAt ?? p.created),
                  },
                },
              },
            ],
          },
        };
      case 'succeeded':
        return { metadata, status: { phase: 'Succeeded', startTime: new Date(p.startedAt ?? p.created) } };
      default:
        return {
          metadata,
          status: {
            phase: 'Running',
            startTime: new Date(p.startedAt ?? p.created),
            conditions: [{ type: 'Ready', status: 'True' }],
          },
        };
    }
  };
  for (let clock = 0; clock <= duration; clock += TICK_MS) {
    advance(clock - TICK_MS, clock);
    // The back-off's look, as reconcile.ts lookAtPods and decide.ts measureBackoff do it.
    const views = jobs.map(view);
    const sel = backoff.select(views, clock);
    const failedJobs = new Set(sel.failed);
    const sampled = new Set(sel.sample);
    const listed = jobs.flatMap((j) => [
      ...(failedJobs.has(j.name) ? j.pods.filter((p) => p.state === 'failed') : []),
      ...(sampled.has(j.name) ? j.pods.filter((p) => p.index < POD_SAMPLE_INDEXES) : []),
    ]);
    const byName = new Map(listed.map((p) => [p.name, v1(jobs.find((j) => j.pods.includes(p)) as Job, p)]));
    backoff.observe([...byName.values()], clock, { jobs: views, failed: failedJobs, sample: sampled });
    // The decision: an agent per waiting CI job not covered by an agent starting or idle.
    const supply = pods().filter((p) => p.state === 'pending' || p.state === 'idle').length;
    const inFlight = pods().filter(live).length;
    const want = Math.min(waiting.length - supply, MAX_AGENTS - inFlight);
    const count = Math.min(want, backoff.gate(QUEUE, clock).allow);
    // Held back: CI jobs waiting with no agent on its way, and the gate lets fewer be made.
    if (want > 0 && count < want) {
      stallFrom ??= clock;
      if (clock + TICK_MS - stallFrom > longestStallMs) {
        longestStallMs = clock + TICK_MS - stallFrom;
        waitingInStall = Math.max(waitingInStall, want);
      }
    } else stallFrom = undefined;
    if (count > 0) {
      if (jobSeq === 0) firstJobAt = clock;
      const name = `agent-${++jobSeq}`;
      const job: Job = { name, created: clock, pods: [] };
      for (let i = 0; i < count; i++) {
        const fails = s.persistent || random() < s.failRate;
        const readyAt = clock + between(5_000, 25_000);
        job.pods.push({
          name: `${name}-${i}`,
          index: i,
          created: clock,
          state: 'pending',
          readyAt,
          ...(fails ? { failsAt: readyAt - between(0, 4_000) + between(1_000, 10_000) } : {}),
        });
      }
      agentsMade += count;
      jobs.push(job);
      backoff.created(QUEUE, name, clock);
    }
  }
  return { longestStallMs, waitingInStall, jobsCreated: jobSeq, firstJobAt, agentsMade, agentsFailed, ciJobsRun };
}
