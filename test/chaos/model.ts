/**
 * The model-level chaos harness: one seeded, randomized schedule of the REAL scaler code
 * (functions/scaler/loop.ts `run()`, with the real decision, ledger rules, limiter plan and
 * agent Job builder) over the in-memory ledger and limiter stores (the DynamoDB stores'
 * semantics), an SQS-like queue with a dead-letter queue, a small Kubernetes cluster with agent
 * pods, and a CI system whose webhooks arrive 1-3 times, late and out of order.
 *
 * Every port call of every scaler invocation is a STEP: it waits until the seeded scheduler
 * grants it, so 2-4 overlapping invocations interleave at every await. At each grant the
 * scheduler may inject a fault (DynamoDB throttling / 500 / spurious transaction conflict /
 * a write that committed but answered an error; Kubernetes 409/429/500/timeouts, including a
 * create that times out on the client and lands on the server later; SQS errors) or crash the
 * invocation before or after the call took effect. The world moves on between steps: CI jobs
 * arrive in bursts over several queues, agents start, fail, take jobs, finish and exit,
 * operators delete Jobs, webhooks arrive.
 *
 * Every random choice goes through a Chooser, which records it: a failing schedule is replayed
 * exactly from its choice list, and shrunk by shrinking that list (shrink.ts). 0 is always the
 * simplest choice (no fault, fewest jobs, the oldest pending call), so a shrunk list reads as
 * "what had to go wrong".
 *
 * Invariants (checked after every step, and at the end): see checkStep() and checkEnd().
 */

import type { V1Job } from '@kubernetes/client-node';
import { RetryableKubeError } from '../../functions/adapters/kubernetes/errors.js';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { liveAgents } from '../../functions/core/agent-job.js';
import { eventId, type JobEvent, type JobEventKind } from '../../functions/core/job-event.js';
import { intentCreateGraceMs } from '../../functions/core/limiter.js';
import type { CountOptions, LedgerStore, LimiterStore, QueueCounts } from '../../functions/core/stores.js';
import { run } from '../../functions/scaler/loop.js';
import type { ReceivedEvent, ScalerPorts, ScalerSettings } from '../../functions/scaler/ports.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';
import { rng as mulberry32 } from '../../tools/simulate/trace.js';

// --- choices -------------------------------------------------------------------------------------

/** The simulator's seeded PRNG (mulberry32), so a seed means the same numbers everywhere. */
export { mulberry32 };

/** Every random choice of a schedule, recorded; replays a recorded list (0 once it runs out). */
export class Chooser {
  readonly record: number[] = [];
  private readonly rng: (() => number) | undefined;
  constructor(
    seed: number,
    private readonly replay?: readonly number[],
  ) {
    this.rng = replay ? undefined : mulberry32(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    if (n <= 1) return 0;
    let v: number;
    if (this.replay) {
      const i = this.record.length;
      v = i < this.replay.length ? Math.abs(Math.trunc(this.replay[i] ?? 0)) % n : 0;
    } else {
      v = Math.floor((this.rng as () => number)() * n);
    }
    this.record.push(v);
    return v;
  }
  /** True with probability p (0 -- the simplest choice -- is false). */
  chance(p: number): boolean {
    if (p <= 0) return false;
    return this.int(1000) >= 1000 - Math.round(p * 1000);
  }
}

// --- parameters ----------------------------------------------------------------------------------

/** Virtual time constants of the model (milliseconds), scaled down from production. */
export const T = {
  /** INTENT_LEASE_SECONDS (the minimum the config allows). */
  lease: 10_000,
  /** JOB_TTL_SECONDS_AFTER_FINISHED (>= the lease, as the config requires). */
  ttl: 10_000,
  /** An invocation starts every `period` (EventBridge schedule). */
  period: 4_000,
  /** SCALER_POLL_SECONDS. */
  pollSeconds: 2,
  /** SQS visibility timeout. */
  visibility: 5_000,
  maxReceiveCount: 5,
  podStartupMax: 3_000,
  jobDurationMax: 6_000,
  agentExitMax: 2_000,
  idleTimeout: 5_000,
  /** Longest delay of a webhook delivery (late duplicates included). */
  webhookDelayMax: 12_000,
  /** Jobs arrive in [0, arrivalSpan). */
  arrivalSpan: 14_000,
  /** Longest lag of the ledger's GSI (counts) behind its table. */
  gsiLagMax: 1_000,
  /** Faults, crashes, failing agents and operators stop at this time. */
  chaosEnd: 20_000,
} as const;

/** The liveness bound, in milliseconds after max(arrival, chaos end): see docs/testing.md (Chaos suite). */
export function livenessBoundMs(waves: number): number {
  const tick = T.period; // a tick happens at least this often (one invocation per period)
  return (
    T.lease +
    T.visibility +
    T.webhookDelayMax +
    waves * (T.jobDurationMax + T.agentExitMax + T.podStartupMax + 2 * tick)
  );
}

/**
 * Agents made per job that needed one: at most this ratio over a run of schedules (checked by
 * the suite over each batch), and per schedule at most floor(ratio x needed) + WASTE_SLACK: one
 * agent of slack for the waste no scaler can avoid (a `finished` AND a `started` webhook both
 * late: the ledger shows one job running and one pending while the cluster shows one agent).
 */
export const WASTE_RATIO = 1.05;
export const WASTE_SLACK = 1;

export interface Violation {
  readonly invariant: 'max-agents' | 'liveness' | 'limiter-counter' | 'event-lost' | 'dlq' | 'waste' | 'harness';
  readonly message: string;
  /** Virtual time (s). */
  readonly at: number;
}

export interface ScheduleResult {
  readonly seed: number;
  readonly violation?: Violation;
  readonly choices: readonly number[];
  readonly steps: number;
  /** The step log (only when asked for: `trace: true`). */
  readonly log: readonly string[];
  readonly stats: {
    readonly jobs: number;
    readonly queues: number;
    readonly maxAgents: number;
    readonly concurrency: number;
    readonly agentsMade: number;
    readonly agentsNeeded: number;
    readonly faults: number;
    readonly crashes: number;
    readonly invocations: number;
    readonly poisoned: number;
    readonly virtualSeconds: number;
  };
}

// --- the world -----------------------------------------------------------------------------------

const EPOCH = Date.UTC(2026, 10, 29, 8, 0, 0);
const PROVIDER = 'buildkite' as const;

type CiState = 'future' | 'waiting' | 'running' | 'finished' | 'cancelled';
interface CiJob {
  readonly id: string;
  readonly queue: string;
  readonly arrival: number;
  readonly duration: number;
  readonly cancelAt?: number;
  state: CiState;
  takenAt?: number;
  pod?: Pod | undefined;
  /** Every kind emitted (the ledger must end at their join). */
  readonly emitted: Set<JobEventKind>;
}

type PodState = 'pending' | 'idle' | 'busy' | 'exiting' | 'done';
interface Pod {
  readonly id: number;
  readonly queue: string;
  readonly job: KJob;
  state: PodState;
  outcome?: 'succeeded' | 'failed';
  ci?: CiJob | undefined;
  epoch: number;
}

interface KJob {
  readonly name: string;
  readonly queue: string;
  readonly metadata: NonNullable<V1Job['metadata']>;
  readonly count: number;
  readonly pods: Pod[];
  finished: boolean;
  deleted: boolean;
}

interface Message {
  readonly id: string;
  readonly body: JobEvent | undefined;
  visibleAt: number;
  receiveCount: number;
  handle?: string;
}

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

type FaultPlan = 'ok' | 'error-before' | 'error-after' | 'crash-before' | 'crash-after' | 'late' | 'partial';

interface Invocation {
  readonly id: number;
  crashed: boolean;
  done: boolean;
}

interface PendingCall {
  readonly inv: Invocation;
  readonly seq: number;
  readonly label: string;
  /** Not grantable before this time (sleep, long poll without messages). */
  readonly readyAt: number;
  /** Grantable early when this says so (a long poll with messages visible). */
  readonly readyEarly?: () => boolean;
  readonly faults: readonly FaultPlan[];
  readonly grant: (plan: FaultPlan) => void;
}

export interface ScheduleOptions {
  readonly seed: number;
  /** Replay this choice list instead of drawing from the seed. */
  readonly replay?: readonly number[];
  /** Keep a readable log of every step. */
  readonly trace?: boolean;
  /** Stop after this many steps (harness guard). */
  readonly maxSteps?: number;
  /**
   * Break the system on purpose (the suite's own test: each invariant can fail):
   * over-limit: the scaler is told MAX_AGENTS + 1; lose-finished: `finished` events are
   * acknowledged without being applied; stop-scaling: no invocation once the faults stop;
   * skip-correct: limiter corrections to 0 are acknowledged without being written.
   */
  readonly sabotage?: 'over-limit' | 'lose-finished' | 'stop-scaling' | 'skip-correct';
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const never = <T>(): Promise<T> => new Promise<T>(() => {});

class DynamoError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

const TEMPLATE: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: {
    template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'buildkite/agent:3' }] } },
  },
};

/** The LimiterStore methods of the in-memory store (whatever the interface holds today). */
const LIMITER_METHODS = Object.getOwnPropertyNames(InMemoryLimiterStore.prototype).filter(
  (name) =>
    name !== 'constructor' &&
    name !== 'failNext' &&
    name !== 'enter' &&
    typeof (InMemoryLimiterStore.prototype as unknown as Record<string, unknown>)[name] === 'function',
);

/** A short readable form of a store call's arguments for the step log. */
function describeArgs(args: readonly unknown[]): string {
  return args
    .map((a) => {
      if (a && typeof a === 'object') {
        const o = a as Record<string, unknown>;
        if (typeof o.jobName === 'string') return o.jobName;
        if (typeof o.queue === 'string')
          return `${o.queue}${o.count !== undefined ? ` +${o.count}` : ''}${o.inFlight !== undefined ? ` -> ${o.inFlight}` : ''}${o.expectedVersion !== undefined ? ` @v${o.expectedVersion}` : ''}`;
        return '';
      }
      return String(a);
    })
    .join(' ')
    .trim();
}

const quietLog = { debug() {}, info() {}, warn() {}, error() {} };

function precedence(kind: JobEventKind): number {
  return kind === 'finished' ? 4 : kind === 'cancelled' ? 3 : kind === 'started' ? 2 : 1;
}

export class ChaosSchedule {
  readonly c: Chooser;
  private now = 0;
  private seq = 0;
  private timers: Timer[] = [];
  private calls: PendingCall[] = [];
  private readonly log: string[] = [];
  private readonly trace: boolean;
  private steps = 0;
  private violation: Violation | undefined;

  // workload and fault knobs (drawn from the chooser)
  private readonly queues: string[];
  private readonly maxAgents: number;
  private readonly concurrency: number;
  private readonly faultRate: number;
  private readonly crashRate: number;
  /** At most this many invocations crash in one schedule. */
  private readonly crashBudget: number;
  private readonly agentFailRate: number;
  private readonly jobs: CiJob[] = [];
  private waves = 1;

  // stores and world
  private readonly ledger = new InMemoryLedgerStore();
  /** Counts as of each ledger write (the GSI's view catches up with these). */
  private readonly countHistory: { at: number; counts: Record<string, QueueCounts> }[] = [];
  private readonly limiter = new InMemoryLimiterStore();
  private readonly factory = jobFactory({
    namespace: 'ci-agents',
    ttlSecondsAfterFinished: T.ttl / 1000,
    activeDeadlineSeconds: 3600,
    templateFor: () => TEMPLATE,
  });
  private readonly kjobs = new Map<string, KJob>();
  private readonly waiting = new Map<string, CiJob[]>();
  private readonly idle = new Map<string, Pod[]>();
  private readonly nonTerminal = new Map<string, number>();
  private podSeq = 0;
  private readonly messages = new Map<string, Message>();
  private readonly dlq: Message[] = [];
  private msgSeq = 0;
  private pendingDeliveries = 0;
  private poisoned = 0;
  private readonly invocations: Invocation[] = [];
  private stopInvoking = false;
  private agentsMade = 0;
  private agentsLost = 0;
  private faults = 0;
  private crashes = 0;
  private readonly settings: ScalerSettings;

  constructor(private readonly options: ScheduleOptions) {
    this.c = new Chooser(options.seed, options.replay);
    this.trace = options.trace ?? false;
    const c = this.c;
    this.queues = Array.from({ length: 1 + c.int(3) }, (_, i) => `q${i}`);
    this.maxAgents = 1 + c.int(4);
    this.concurrency = 2 + c.int(3);
    const level = c.int(4);
    this.faultRate = [0, 0.03, 0.08, 0.15][level] ?? 0;
    this.crashRate = [0, 0.005, 0.01, 0.02][level] ?? 0;
    this.crashBudget = level;
    this.agentFailRate = [0, 0.05, 0.1, 0.2][level] ?? 0;
    this.settings = {
      queues: this.queues,
      limits: Object.fromEntries(
        this.queues.map((q) => [
          q,
          { minAgents: 0, maxAgents: this.maxAgents + (options.sabotage === 'over-limit' ? 1 : 0) },
        ]),
      ),
      intentLeaseMs: T.lease,
      drainBudgetMs: 2_000,
    };
    this.note(
      `queues=${this.queues.length} MAX_AGENTS=${this.maxAgents} concurrency=${this.concurrency} faults=${this.faultRate}`,
    );
    this.buildWorkload();
  }

  // --- timers and time -----------------------------------------------------------------------

  private at(at: number, fn: () => void): void {
    const timer = { at: Math.max(at, this.now), seq: this.seq++, fn };
    // Few timers: a sorted insert is fine.
    let i = this.timers.length;
    while (i > 0) {
      const prev = this.timers[i - 1] as Timer;
      if (prev.at < timer.at || (prev.at === timer.at && prev.seq < timer.seq)) break;
      i--;
    }
    this.timers.splice(i, 0, timer);
  }

  private after(ms: number, fn: () => void): void {
    this.at(this.now + ms, fn);
  }

  private nextTime(): number {
    let next = this.timers[0]?.at ?? Number.POSITIVE_INFINITY;
    for (const call of this.calls) if (call.readyAt > this.now) next = Math.min(next, call.readyAt);
    for (const m of this.messages.values()) if (m.visibleAt > this.now) next = Math.min(next, m.visibleAt);
    return next;
  }

  /** Moves the clock to `to`, firing every timer due on the way, in order. */
  private advance(to: number): void {
    while (this.timers.length > 0 && (this.timers[0] as Timer).at <= to) {
      const t = this.timers.shift() as Timer;
      this.now = Math.max(this.now, t.at);
      t.fn();
      this.checkStep();
      if (this.violation) return;
    }
    this.now = Math.max(this.now, to);
  }

  private note(text: string): void {
    if (this.trace) this.log.push(`${(this.now / 1000).toFixed(3).padStart(8)}s  ${text}`);
  }

  // --- CI and webhooks -----------------------------------------------------------------------

  private buildWorkload(): void {
    const c = this.c;
    const bursts = Array.from({ length: 1 + c.int(3) }, () => c.int(T.arrivalSpan));
    const n = 1 + c.int(10);
    for (let i = 0; i < n; i++) {
      const queue = this.queues[c.int(this.queues.length)] as string;
      const arrival = (bursts[c.int(bursts.length)] ?? 0) + c.int(1_000);
      const duration = 500 + c.int(T.jobDurationMax - 500);
      const cancel = c.chance(0.15);
      const job: CiJob = {
        id: `job-${i}`,
        queue,
        arrival,
        duration,
        ...(cancel ? { cancelAt: arrival + c.int(8_000) } : {}),
        state: 'future',
        emitted: new Set(),
      };
      this.jobs.push(job);
      this.at(arrival, () => this.arrive(job));
      if (job.cancelAt !== undefined) this.at(job.cancelAt, () => this.cancel(job));
    }
    for (const q of this.queues) {
      const inQueue = this.jobs.filter((j) => j.queue === q).length;
      this.waves = Math.max(this.waves, Math.ceil(inQueue / this.maxAgents));
    }
    if (c.chance(0.2)) this.at(c.int(T.arrivalSpan), () => this.sendPoison());
    // Operators deleting Jobs during the chaos phase.
    const deletes = c.chance(0.3) ? 1 + c.int(2) : 0;
    for (let i = 0; i < deletes; i++) this.at(c.int(T.chaosEnd), () => this.operatorDelete());
    // EventBridge: an invocation every period while the schedule runs.
    const invoke = () => {
      if (this.stopInvoking) return;
      if (this.options.sabotage !== 'stop-scaling' || this.chaos) this.startInvocation();
      this.after(T.period, invoke);
    };
    this.at(0, invoke);
  }

  private get chaos(): boolean {
    return this.now < T.chaosEnd;
  }

  private emit(job: CiJob, kind: JobEventKind): void {
    job.emitted.add(kind);
    const at = new Date(EPOCH + this.now).toISOString();
    const event: JobEvent = {
      id: eventId(PROVIDER, job.id, kind),
      provider: PROVIDER,
      jobId: job.id,
      queue: job.queue,
      kind,
      occurredAt: at,
      receivedAt: at,
      trace: {},
    };
    const copies = 1 + this.c.int(3);
    for (let i = 0; i < copies; i++) {
      const delay = this.c.int(4) === 0 ? this.c.int(T.webhookDelayMax) : this.c.int(1_500);
      this.pendingDeliveries++;
      this.after(delay, () => {
        this.pendingDeliveries--;
        // occurredAt: when it happened at the provider; receivedAt: when our webhook got it.
        this.send({ ...event, receivedAt: new Date(EPOCH + this.now).toISOString() });
      });
    }
  }

  private send(body: JobEvent | undefined): void {
    const id = `m${++this.msgSeq}`;
    this.messages.set(id, { id, body, visibleAt: this.now, receiveCount: 0 });
    this.note(body ? `webhook ${body.jobId} ${body.kind} enqueued` : 'poisoned message enqueued');
  }

  private sendPoison(): void {
    this.poisoned++;
    this.send(undefined);
  }

  private arrive(job: CiJob): void {
    if (job.state !== 'future') return;
    job.state = 'waiting';
    this.note(`CI ${job.id} (${job.queue}) scheduled`);
    this.emit(job, 'scheduled');
    const list = this.waiting.get(job.queue) ?? [];
    list.push(job);
    this.waiting.set(job.queue, list);
    const idle = this.idle.get(job.queue);
    if (idle && idle.length > 0) this.take(idle[0] as Pod, job);
  }

  private cancel(job: CiJob): void {
    if (job.state === 'waiting') {
      job.state = 'cancelled';
      const list = this.waiting.get(job.queue) ?? [];
      list.splice(list.indexOf(job), 1);
      this.note(`CI ${job.id} cancelled before start`);
      this.emit(job, 'cancelled');
    } else if (job.state === 'running') {
      this.note(`CI ${job.id} cancelled while running`);
      this.endRun(job, 'cancelled');
    }
  }

  // --- agents --------------------------------------------------------------------------------

  private setPod(pod: Pod, state: PodState): void {
    const wasLive = pod.state !== 'done';
    pod.state = state;
    pod.epoch++;
    if (wasLive && state === 'done') this.nonTerminal.set(pod.queue, (this.nonTerminal.get(pod.queue) ?? 1) - 1);
  }

  private startPod(job: KJob): Pod {
    const pod: Pod = { id: ++this.podSeq, queue: job.queue, job, state: 'pending', epoch: 0 };
    this.agentsMade++;
    this.nonTerminal.set(job.queue, (this.nonTerminal.get(job.queue) ?? 0) + 1);
    const startup = 200 + this.c.int(T.podStartupMax - 200);
    const fails = this.chaos && this.c.chance(this.agentFailRate);
    const epoch = pod.epoch;
    this.after(startup, () => {
      if (pod.state !== 'pending' || pod.epoch !== epoch) return;
      if (fails) {
        this.note(`agent pod ${pod.id} (${job.name}) failed at start`);
        this.agentsLost++;
        this.endPod(pod, 'failed');
        return;
      }
      this.ready(pod);
    });
    return pod;
  }

  private ready(pod: Pod): void {
    const next = this.waiting.get(pod.queue)?.[0];
    if (next) this.take(pod, next);
    else this.becomeIdle(pod);
  }

  private becomeIdle(pod: Pod): void {
    this.setPod(pod, 'idle');
    const list = this.idle.get(pod.queue) ?? [];
    list.push(pod);
    this.idle.set(pod.queue, list);
    const epoch = pod.epoch;
    this.after(T.idleTimeout, () => {
      if (pod.state === 'idle' && pod.epoch === epoch) {
        this.note(`agent pod ${pod.id} idle timeout`);
        this.endPod(pod, 'succeeded');
      }
    });
  }

  private removeIdle(pod: Pod): void {
    const list = this.idle.get(pod.queue);
    const i = list?.indexOf(pod) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
  }

  private take(pod: Pod, job: CiJob): void {
    this.removeIdle(pod);
    const list = this.waiting.get(job.queue) ?? [];
    list.splice(list.indexOf(job), 1);
    this.setPod(pod, 'busy');
    pod.ci = job;
    job.pod = pod;
    job.state = 'running';
    job.takenAt ??= this.now;
    this.note(`agent pod ${pod.id} takes ${job.id}`);
    this.emit(job, 'started');
    this.after(job.duration, () => {
      if (job.state === 'running' && job.pod === pod) this.endRun(job, 'finished');
    });
  }

  private endRun(job: CiJob, how: 'finished' | 'cancelled'): void {
    const pod = job.pod;
    job.state = how;
    job.pod = undefined;
    this.emit(job, how);
    if (pod && pod.state === 'busy') {
      pod.ci = undefined;
      this.setPod(pod, 'exiting');
      const epoch = pod.epoch;
      this.after(200 + this.c.int(T.agentExitMax - 200), () => {
        if (pod.state === 'exiting' && pod.epoch === epoch) this.endPod(pod, 'succeeded');
      });
    }
  }

  private endPod(pod: Pod, outcome: 'succeeded' | 'failed'): void {
    if (pod.state === 'done') return;
    this.removeIdle(pod);
    this.setPod(pod, 'done');
    pod.outcome = outcome;
    const job = pod.job;
    if (!job.finished && job.pods.every((p) => p.state === 'done')) {
      job.finished = true;
      this.after(T.ttl, () => {
        if (this.kjobs.get(job.name) === job) this.kjobs.delete(job.name);
      });
    }
  }

  /** `kubectl delete job`: the Job goes, its pods are killed (an agent mid-job loses its CI job). */
  private operatorDelete(): void {
    const live = [...this.kjobs.values()].filter((j) => !j.finished);
    if (live.length === 0) return;
    const job = live[this.c.int(live.length)] as KJob;
    this.note(`operator deletes Job ${job.name}`);
    this.kjobs.delete(job.name);
    job.deleted = true;
    for (const pod of job.pods) {
      if (pod.state === 'done') continue;
      // An agent killed before it took a CI job needs a replacement.
      if (pod.state === 'pending' || pod.state === 'idle') this.agentsLost++;
      const ci = pod.ci;
      if (ci && ci.state === 'running') this.endRun(ci, 'finished');
      this.endPod(pod, 'failed');
    }
  }

  // --- the cluster as the scaler sees it -----------------------------------------------------

  private createJob(v1: V1Job): 'created' | 'exists' {
    const name = v1.metadata?.name ?? '';
    if (this.kjobs.has(name)) return 'exists';
    const queue = v1.metadata?.annotations?.['ci-autoscaler/queue'] ?? '';
    const count = v1.spec?.parallelism ?? 1;
    const job: KJob = { name, queue, metadata: v1.metadata ?? {}, count, pods: [], finished: false, deleted: false };
    this.kjobs.set(name, job);
    this.note(`Job ${name} (${queue}) created with ${count} agent(s)`);
    for (let i = 0; i < count; i++) job.pods.push(this.startPod(job));
    return 'created';
  }

  private view(job: KJob): V1Job {
    let active = 0;
    let succeeded = 0;
    let failed = 0;
    for (const p of job.pods) {
      if (p.state !== 'done') active++;
      else if (p.outcome === 'failed') failed++;
      else succeeded++;
    }
    return {
      metadata: job.metadata,
      spec: { parallelism: job.count, completions: job.count, template: {} },
      status: {
        active,
        succeeded,
        failed,
        ...(job.finished ? { conditions: [{ type: failed > 0 ? 'Failed' : 'Complete', status: 'True' }] } : {}),
      },
    };
  }

  // --- SQS -----------------------------------------------------------------------------------

  private visible(): boolean {
    for (const m of this.messages.values()) if (m.visibleAt <= this.now) return true;
    return false;
  }

  private receive(max: number): ReceivedEvent[] {
    const out: ReceivedEvent[] = [];
    for (const m of [...this.messages.values()]) {
      if (out.length >= max) break;
      if (m.visibleAt > this.now) continue;
      if (m.receiveCount >= T.maxReceiveCount) {
        // The redrive policy moves it to the dead-letter queue.
        this.messages.delete(m.id);
        this.dlq.push(m);
        this.note(`${m.id} moved to the dead-letter queue`);
        if (m.body) this.fail('dlq', `valid event ${m.body.jobId} ${m.body.kind} reached the dead-letter queue`);
        continue;
      }
      m.receiveCount++;
      m.handle = `${m.id}/${m.receiveCount}`;
      m.visibleAt = this.now + T.visibility;
      out.push({
        receiptHandle: m.handle,
        messageId: m.id,
        receiveCount: m.receiveCount,
        ...(m.body ? { event: { ...m.body, trace: {} } } : { error: 'not JSON' }),
      });
    }
    return out;
  }

  private deleteMessages(handles: readonly string[]): string[] {
    const failed: string[] = [];
    for (const h of handles) {
      const id = h.slice(0, h.indexOf('/'));
      const m = this.messages.get(id);
      if (!m) continue;
      if (m.handle !== h) {
        failed.push(h);
        continue;
      }
      this.messages.delete(id);
    }
    return failed;
  }

  // --- the ledger's GSI -----------------------------------------------------------------------

  private async recordCounts(): Promise<void> {
    this.countHistory.push({ at: this.now, counts: await this.ledger.counts(this.queues, new Date(EPOCH + this.now)) });
  }

  /** Counts as a GSI query may see them: those of a moment up to GSI_LAG_MAX ago. */
  private async lagged(
    queues: readonly string[],
    now: Date,
    options?: CountOptions,
  ): Promise<Record<string, QueueCounts>> {
    const lag = this.c.int(2) === 0 ? 0 : this.c.int(T.gsiLagMax);
    // (The recorded history is uncapped: the model's queues never reach the scaler's cap of 1000.)
    if (lag === 0) return this.ledger.counts(queues, now, options);
    const at = this.now - lag;
    let view: Record<string, QueueCounts> = {};
    for (const h of this.countHistory) {
      if (h.at > at) break;
      view = h.counts;
    }
    return Object.fromEntries(queues.map((q) => [q, view[q] ?? { pending: 0, running: 0 }]));
  }

  // --- the scheduler -------------------------------------------------------------------------

  /**
   * A port call of invocation `inv`: registered, then carried out when the scheduler grants it,
   * with the fault the scheduler picks among `faults`.
   */
  private call<R>(
    inv: Invocation,
    label: string,
    faults: readonly FaultPlan[],
    effect: (plan: FaultPlan) => R | Promise<R>,
    error: (plan: FaultPlan) => Error,
    ready: { readyAt?: number; readyEarly?: () => boolean } = {},
  ): Promise<R> {
    if (inv.crashed) return never();
    return new Promise<R>((resolve, reject) => {
      this.calls.push({
        inv,
        seq: this.seq++,
        label,
        readyAt: ready.readyAt ?? this.now,
        ...(ready.readyEarly ? { readyEarly: ready.readyEarly } : {}),
        faults,
        grant: (plan) => {
          this.note(`inv${inv.id} ${label}${plan === 'ok' ? '' : ` [${plan}]`}`);
          switch (plan) {
            case 'crash-before':
              this.crash(inv);
              return;
            case 'crash-after':
              effect(plan);
              this.crash(inv);
              return;
            case 'error-before':
              reject(error(plan));
              return;
            case 'error-after':
            case 'late':
              effect(plan);
              reject(error(plan));
              return;
            default:
              try {
                resolve(effect(plan));
              } catch (e) {
                reject(e);
              }
          }
        },
      });
    });
  }

  private crash(inv: Invocation): void {
    inv.crashed = true;
    this.crashes++;
    this.calls = this.calls.filter((c) => c.inv !== inv);
  }

  private pickFault(call: PendingCall): FaultPlan {
    if (!this.chaos) return 'ok';
    if (call.faults.length > 0 && this.c.chance(this.faultRate)) {
      this.faults++;
      return call.faults[this.c.int(call.faults.length)] as FaultPlan;
    }
    if (this.crashes < this.crashBudget && this.c.chance(this.crashRate))
      return this.c.int(2) === 0 ? 'crash-before' : 'crash-after';
    return 'ok';
  }

  private portsFor(inv: Invocation): ScalerPorts {
    const dynamoError = () =>
      this.c.int(2) === 0
        ? new DynamoError('ProvisionedThroughputExceededException', 'Rate of requests exceeds the allowed throughput')
        : new DynamoError('InternalServerError', 'Internal server error');
    const kubeError = () => {
      const which = this.c.int(3);
      if (which === 0) return new RetryableKubeError('HTTP 429 TooManyRequests', 429, 'TooManyRequests', 1);
      if (which === 1) return new RetryableKubeError('HTTP 500 InternalError', 500, 'InternalError');
      return new RetryableKubeError('timed out', 0, 'Timeout');
    };
    const timeout = () => new RetryableKubeError('timed out', 0, 'Timeout');
    const sqsError = () => new Error('SQS: InternalError');
    const read: FaultPlan[] = ['error-before'];
    const write: FaultPlan[] = ['error-before', 'error-after'];
    // Every method of the store (generic, so a store method added later is wrapped too): reads
    // may be throttled; writes may fail before or after they commit; a reservation may be
    // cancelled by DynamoDB (TransactionConflict: nothing written, 'conflict').
    const inner = this.limiter as unknown as Record<string, (...args: unknown[]) => unknown>;
    const wrapped: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
    for (const name of LIMITER_METHODS) {
      const faults: FaultPlan[] = name === 'snapshot' ? read : name === 'reserve' ? [...write, 'partial'] : write;
      wrapped[name] = (...args: unknown[]) =>
        this.call(
          inv,
          `limiter.${name} ${describeArgs(args)}`.trim(),
          faults,
          (plan) =>
            plan === 'partial' ? 'conflict' : (inner[name] as (...a: unknown[]) => unknown).apply(this.limiter, args),
          dynamoError,
        );
    }
    if (this.options.sabotage === 'skip-correct') {
      const correct = wrapped.correct as (r: { inFlight: number }) => Promise<unknown>;
      wrapped.correct = (...args: unknown[]) => {
        const request = args[0] as { inFlight: number };
        return request.inFlight === 0 ? Promise.resolve(true) : correct(request);
      };
    }
    const limiter = wrapped as unknown as LimiterStore;
    const ledger: LedgerStore = {
      apply: (events, now) =>
        this.call(
          inv,
          `ledger.apply ${events.map((e) => `${e.jobId}:${e.kind}`).join(',')}`,
          [...write, 'partial'],
          (plan) => {
            if (this.options.sabotage === 'lose-finished') {
              const kept = events.filter((e) => e.kind !== 'finished');
              const applied = this.ledger.apply(kept, now);
              return applied.then((outcomes) =>
                events.map(
                  (e) => outcomes.find((o) => o.eventId === e.id) ?? { eventId: e.id, result: 'applied' as const },
                ),
              );
            }
            if (plan !== 'partial') return this.ledger.apply(events, now).finally(() => this.recordCounts());
            // One UpdateItem of the batch throttled past the SDK's retries.
            const victim = events[this.c.int(events.length)]?.jobId;
            this.ledger.failWith = (e) => (e.jobId === victim ? 'ProvisionedThroughputExceededException' : undefined);
            const out = this.ledger.apply(events, now);
            this.ledger.failWith = undefined;
            return out.finally(() => this.recordCounts());
          },
          dynamoError,
        ),
      // The GSI is eventually consistent: counts may lag the table by up to GSI_LAG_MAX.
      counts: (queues, now, options) =>
        this.call(inv, 'ledger.counts', read, () => this.lagged(queues, now, options), dynamoError),
    };
    return {
      events: {
        receive: (o) =>
          this.call(
            inv,
            `sqs.receive wait=${o.waitSeconds}`,
            ['error-before', 'error-after'],
            () => {
              const got = this.receive(o.max);
              if (this.trace && got.length > 0) this.note(`  -> ${got.map((m) => m.messageId).join(',')}`);
              return got;
            },
            sqsError,
            { readyAt: this.now + o.waitSeconds * 1000, readyEarly: () => this.visible() },
          ),
        delete: (handles) =>
          this.call(
            inv,
            `sqs.delete ${handles.join(',')}`,
            ['error-before', 'partial'],
            (plan) => {
              if (plan !== 'partial') return this.deleteMessages(handles);
              const keep = handles[this.c.int(handles.length)];
              return [...this.deleteMessages(handles.filter((h) => h !== keep)), ...(keep ? [keep] : [])];
            },
            sqsError,
          ),
      },
      ledger,
      limiter,
      cluster: {
        listAgentJobs: () =>
          this.call(inv, 'kube.list', read, () => [...this.kjobs.values()].map((j) => this.view(j)), kubeError),
        createJob: (job) =>
          this.call(
            inv,
            `kube.create ${job.metadata?.name}`,
            ['error-before', 'error-after', 'late'],
            (plan) => {
              if (plan !== 'late') return this.createJob(job);
              // The client timed out; the API server commits the create later (within its own
              // request timeout, which the grace period of the intent lease covers).
              const delay = this.c.int(intentCreateGraceMs(T.lease));
              this.after(delay, () => {
                this.note(`late create of ${job.metadata?.name} lands`);
                this.createJob(job);
              });
              return 'created' as const;
            },
            // Before: 429, 500 or a timeout; after (committed, or committing later): a timeout.
            (plan) => (plan === 'error-before' ? kubeError() : timeout()),
          ),
      },
      jobs: this.factory,
      log: quietLog,
      now: () => EPOCH + this.now,
      sleep: (ms) => this.call(inv, `sleep ${ms}`, [], () => undefined, sqsError, { readyAt: this.now + ms }),
    };
  }

  private startInvocation(): void {
    const inv: Invocation = { id: this.invocations.length + 1, crashed: false, done: false };
    const alive = this.invocations.filter((i) => !i.done && !i.crashed).length;
    if (alive >= this.concurrency) return;
    this.invocations.push(inv);
    this.note(`inv${inv.id} starts`);
    const budgetMs = this.concurrency * T.period - 500;
    run(this.portsFor(inv), this.settings, { budgetMs, pollSeconds: T.pollSeconds })
      .catch(() => undefined)
      .finally(() => {
        inv.done = true;
        this.note(`inv${inv.id} ends`);
      });
  }

  // --- invariants ----------------------------------------------------------------------------

  private fail(invariant: Violation['invariant'], message: string): void {
    if (this.violation) return;
    this.violation = { invariant, message, at: this.now / 1000 };
    this.note(`VIOLATION ${invariant}: ${message}`);
  }

  /** After every step: never more than MAX_AGENTS non-terminal agent pods per queue. */
  private checkStep(): void {
    for (const [queue, n] of this.nonTerminal) {
      if (n > this.maxAgents)
        this.fail('max-agents', `${n} agent pods in flight on ${queue}, MAX_AGENTS ${this.maxAgents}`);
    }
    if (this.chaos) return;
    const bound = livenessBoundMs(this.waves);
    for (const job of this.jobs) {
      if (job.state !== 'waiting') continue;
      const from = Math.max(job.arrival, T.chaosEnd);
      if (this.now > from + bound)
        this.fail(
          'liveness',
          `${job.id} (${job.queue}) scheduled at ${job.arrival / 1000}s still has no agent ${(this.now - from) / 1000}s after the faults stopped (bound ${bound / 1000}s)`,
        );
    }
  }

  private quiet(): boolean {
    if (this.chaos || this.pendingDeliveries > 0) return false;
    if (this.jobs.some((j) => j.state === 'future' || j.state === 'waiting' || j.state === 'running')) return false;
    for (const m of this.messages.values()) if (m.body) return false;
    for (const n of this.nonTerminal.values()) if (n > 0) return false;
    return true;
  }

  /** At the end: counter = cluster, no event lost, DLQ only poison, agents per job. */
  private async checkEnd(): Promise<void> {
    const snapshot = await this.limiter.snapshot();
    const live = new Map<string, number>();
    for (const j of this.kjobs.values()) live.set(j.queue, (live.get(j.queue) ?? 0) + liveAgents(this.view(j)));
    for (const q of this.queues) {
      const counter = snapshot.limiters.find((l) => l.queue === q)?.inFlight ?? 0;
      const inCluster = live.get(q) ?? 0;
      if (counter !== inCluster)
        this.fail(
          'limiter-counter',
          `limiter counter of ${q} is ${counter}, the cluster has ${inCluster} agents in flight`,
        );
    }
    for (const job of this.jobs) {
      if (job.emitted.size === 0) continue;
      const expected = [...job.emitted].sort((a, b) => precedence(b) - precedence(a))[0];
      const stored = await this.ledger.get({ provider: PROVIDER, jobId: job.id });
      if (stored?.state !== expected)
        this.fail('event-lost', `${job.id}: ledger says ${stored?.state ?? 'nothing'}, events say ${expected}`);
    }
    if (this.dlq.some((m) => m.body)) this.fail('dlq', 'a valid event is in the dead-letter queue');
    const needed = this.agentsNeeded();
    if (this.agentsMade > Math.floor(needed * WASTE_RATIO) + WASTE_SLACK)
      this.fail(
        'waste',
        `${this.agentsMade} agents made where ${needed} were needed (${this.jobs.filter((j) => j.takenAt !== undefined).length} CI jobs run, ${this.cancelledBeforeStart()} cancelled before start, ${this.agentsLost} agents lost before taking a job): ${(this.agentsMade / Math.max(1, needed)).toFixed(2)} per job needing one`,
      );
  }

  /** CI jobs that were cancelled before any agent took them. */
  private cancelledBeforeStart(): number {
    return this.jobs.filter((j) => j.state === 'cancelled' && j.takenAt === undefined).length;
  }

  /**
   * Agents a perfect scaler would have made: one per CI job an agent ran, one per CI job
   * cancelled before it started (its agent may already be on its way), one per agent lost before
   * it took a job (failed at start, killed by an operator).
   */
  private agentsNeeded(): number {
    return this.jobs.filter((j) => j.takenAt !== undefined).length + this.cancelledBeforeStart() + this.agentsLost;
  }

  // --- the loop ------------------------------------------------------------------------------

  async run(): Promise<ScheduleResult> {
    const maxSteps = this.options.maxSteps ?? 200_000;
    let ended = false;
    let finalAt = 0;
    while (!this.violation) {
      await settle();
      if (++this.steps > maxSteps) {
        this.fail('harness', `no end after ${maxSteps} steps`);
        break;
      }
      if (!this.stopInvoking && this.quiet()) {
        // Let every invocation still running finish and every intent's lease run out (a create
        // that may still land keeps its tokens until then), then one last one reconciles.
        this.stopInvoking = true;
        finalAt = this.now + T.lease;
        this.at(finalAt, () => {});
        this.note('quiet: no more invocations after the running ones');
      }
      const alive = this.invocations.filter((i) => !i.done && !i.crashed);
      if (this.stopInvoking && alive.length === 0 && this.now >= finalAt) {
        if (ended) break;
        ended = true;
        this.stopInvoking = false;
        this.startInvocationFinal();
        continue;
      }
      const eligible = this.calls.filter((c) => c.readyAt <= this.now || c.readyEarly?.());
      if (eligible.length === 0 || (this.chaos && this.c.chance(0.05))) {
        const next = this.nextTime();
        if (!Number.isFinite(next)) {
          if (eligible.length === 0) {
            this.fail('harness', 'nothing left to run and no timer');
            break;
          }
        } else {
          this.advance(next);
          this.checkStep();
          continue;
        }
      }
      const call = eligible[this.c.int(eligible.length)] as PendingCall;
      this.calls.splice(this.calls.indexOf(call), 1);
      call.grant(this.pickFault(call));
      this.checkStep();
    }
    if (!this.violation) await this.checkEnd();
    return {
      seed: this.options.seed,
      ...(this.violation ? { violation: this.violation } : {}),
      choices: this.c.record,
      steps: this.steps,
      log: this.log,
      stats: {
        jobs: this.jobs.length,
        queues: this.queues.length,
        maxAgents: this.maxAgents,
        concurrency: this.concurrency,
        agentsMade: this.agentsMade,
        agentsNeeded: this.agentsNeeded(),
        faults: this.faults,
        crashes: this.crashes,
        invocations: this.invocations.length,
        poisoned: this.poisoned,
        virtualSeconds: this.now / 1000,
      },
    };
  }

  /** The last invocation: one tick after everything is quiet, so the counter is reconciled. */
  private startInvocationFinal(): void {
    const inv: Invocation = { id: this.invocations.length + 1, crashed: false, done: false };
    this.invocations.push(inv);
    this.note(`inv${inv.id} starts (final)`);
    run(this.portsFor(inv), this.settings, { budgetMs: 500, pollSeconds: T.pollSeconds })
      .catch(() => undefined)
      .finally(() => {
        inv.done = true;
        this.note(`inv${inv.id} ends`);
      });
    this.stopInvoking = true;
  }
}

export function runSchedule(options: ScheduleOptions): Promise<ScheduleResult> {
  return new ChaosSchedule(options).run();
}
