/**
 * The what-if simulator's API: run policies on the same trace on a virtual clock and measure
 * them. See policies.ts for what each policy is, world.ts for the CI/agent model.
 *
 *   const report = await simulate(generateTrace('bursty', { jobs: 300, seed: 1 }), { maxAgents: 20 });
 *
 * Definitions (all in seconds):
 * - wait: scheduled (the trace's `at`) -> an agent took the job (first time). Jobs cancelled
 *   before any agent took them have no wait (counted in `cancelledBeforeStart`). Percentiles are
 *   nearest-rank: p-th = the ceil(p/100 * n)-th smallest wait.
 * - provisioned agent-seconds: each agent pod from its creation (start-up included) to its exit.
 * - used agent-seconds: time agents spent running CI jobs (including runs a scale-down killed).
 * - idle = provisioned - used; idleFraction = idle / provisioned.
 * - maxInFlight: most agent pods alive (pending, idle, busy) at once, over all queues; the per
 *   queue maxima are in maxInFlightByQueue (MAX_AGENTS applies per queue).
 * - kubernetes.apiCalls: calls the policy makes (list pages, creates, gets, patches);
 *   aws.requests: SQS and DynamoDB requests (the webhook's SendMessage included) — ours only.
 */

import { defaultOf, type VariableName } from '../../functions/shared/config.js';
import { VirtualClock } from './clock.js';
import { GITHUB_AWS_RUNNERS, startAgentStackK8s, startArc, startGithubAwsRunners, startKeda } from './peers.js';
import {
  type Counters,
  POLICIES,
  type PolicyName,
  type PolicyParams,
  type PolicyRun,
  startJobPerCiJob,
  startLongLivedJob,
  startOurs,
} from './policies.js';
import type { TraceJob } from './trace.js';
import { type SeriesPoint, World, type WorldParams } from './world.js';

export interface SimulationOptions extends PolicyParams, WorldParams {
  readonly policies: readonly PolicyName[];
  /** Time-series sampling period; default: the trace's span / 400, at least 1 s. */
  readonly sampleSeconds?: number;
}

/** The product's own default of a variable (functions/shared/config.ts), so the two cannot drift. */
function productDefault(name: VariableName): number {
  return Number(defaultOf(name));
}

export const DEFAULT_OPTIONS: SimulationOptions = {
  policies: POLICIES,
  minAgents: productDefault('MIN_AGENTS'),
  maxAgents: 20,
  scheduleSeconds: 60,
  budgetSeconds: productDefault('SCALER_BUDGET_SECONDS'),
  pollSeconds: productDefault('SCALER_POLL_SECONDS'),
  awsLatencyMs: 10,
  kubeLatencyMs: 20,
  visibilityTimeoutSeconds: 30,
  intentLeaseSeconds: productDefault('INTENT_LEASE_SECONDS'),
  ttlSecondsAfterFinished: productDefault('JOB_TTL_SECONDS_AFTER_FINISHED'),
  activeDeadlineSeconds: productDefault('JOB_ACTIVE_DEADLINE_SECONDS'),
  podStartupSeconds: 15,
  idleTimeoutSeconds: 60,
  agentExitSeconds: 2,
  webhookLatencySeconds: 0.5,
  reorderWindowSeconds: 30,
  seed: 1,
};

export interface WaitStats {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export interface PolicyResult {
  readonly policy: PolicyName;
  readonly jobs: number;
  readonly started: number;
  readonly cancelledBeforeStart: number;
  /** Jobs that never got an agent before the simulation ended (should be 0). */
  readonly neverStarted: number;
  /** Runs killed mid-job by a scale-down (long-lived-job). */
  readonly interrupted: number;
  readonly wait: WaitStats;
  readonly agentSeconds: {
    readonly provisioned: number;
    readonly used: number;
    readonly idle: number;
    readonly idleFraction: number;
  };
  readonly maxInFlight: number;
  readonly maxInFlightByQueue: Readonly<Record<string, number>>;
  readonly agentPods: number;
  readonly kubernetes: {
    readonly jobs: number;
    readonly apiCalls: number;
    readonly calls: Readonly<Record<string, number>>;
  };
  readonly aws: {
    readonly requests: number;
    readonly calls: Readonly<Record<string, number>>;
    readonly lambdaInvocations: number;
  };
  /** Virtual seconds simulated. */
  readonly endSeconds: number;
  readonly errors: readonly string[];
  /** Sorted wait of every started job. */
  readonly waits: readonly number[];
  readonly series: readonly SeriesPoint[];
}

export interface SimulationReport {
  readonly options: SimulationOptions;
  readonly trace: {
    readonly jobs: number;
    readonly queues: readonly string[];
    readonly spanSeconds: number;
    readonly workSeconds: number;
  };
  readonly results: readonly PolicyResult[];
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

export function percentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? 0;
}

export function waitStats(waits: readonly number[]): WaitStats {
  const sorted = [...waits].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    mean: round(sorted.length ? sum / sorted.length : 0),
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? 0),
  };
}

function sum(table: Readonly<Record<string, number>>): number {
  return Object.values(table).reduce((a, b) => a + b, 0);
}

function queuesOf(trace: readonly TraceJob[]): string[] {
  return [...new Set(trace.map((j) => j.queue))].sort();
}

function defaultSampleSeconds(trace: readonly TraceJob[]): number {
  const span = Math.max(0, ...trace.map((j) => j.at + j.duration));
  return Math.max(1, Math.ceil(span / 400));
}

/** The oracle: every job gets an agent at its arrival, for exactly its run. */
export function oracle(trace: readonly TraceJob[], sampleSeconds: number): PolicyResult {
  const runs = trace.map((j) => {
    const end = j.cancelAt !== undefined ? Math.max(j.at, Math.min(j.cancelAt, j.at + j.duration)) : j.at + j.duration;
    return { queue: j.queue, start: j.at, end };
  });
  const used = runs.reduce((a, r) => a + (r.end - r.start), 0);
  // Sweep for the most concurrent runs (ends before starts at the same instant).
  const maxBy = (filter: (q: string) => boolean) => {
    const edges = runs
      .filter((r) => filter(r.queue) && r.end > r.start)
      .flatMap((r) => [[r.start, 1] as const, [r.end, -1] as const]);
    edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let max = 0;
    for (const [, d] of edges) {
      now += d;
      max = Math.max(max, now);
    }
    return max;
  };
  const end = Math.max(0, ...runs.map((r) => r.end));
  const series: SeriesPoint[] = [];
  for (let t = 0; t <= end + sampleSeconds; t += sampleSeconds) {
    const running = runs.filter((r) => r.start <= t && t < r.end).length;
    series.push({ t, pending: 0, inFlight: running, running });
  }
  const waits = trace.map(() => 0);
  return {
    policy: 'oracle',
    jobs: trace.length,
    started: trace.length,
    cancelledBeforeStart: 0,
    neverStarted: 0,
    interrupted: 0,
    wait: waitStats(waits),
    agentSeconds: { provisioned: round(used), used: round(used), idle: 0, idleFraction: 0 },
    maxInFlight: maxBy(() => true),
    maxInFlightByQueue: Object.fromEntries(queuesOf(trace).map((q) => [q, maxBy((x) => x === q)])),
    agentPods: runs.length,
    kubernetes: { jobs: 0, apiCalls: 0, calls: {} },
    aws: { requests: 0, calls: {}, lambdaInvocations: 0 },
    endSeconds: end,
    errors: [],
    waits,
    series,
  };
}

/** Runs one simulated policy on the trace. */
export interface RunHooks {
  /** Called once the policy is wired, before the clock starts (tests: fault injection, inspection). */
  readonly onStart?: (context: {
    readonly world: World;
    readonly clock: VirtualClock;
    readonly run: PolicyRun;
  }) => void;
}

export async function runPolicy(
  policy: Exclude<PolicyName, 'oracle'>,
  trace: readonly TraceJob[],
  options: SimulationOptions,
  hooks: RunHooks = {},
): Promise<PolicyResult> {
  const clock = new VirtualClock();
  const world = new World(clock, options, trace);
  const queues = queuesOf(trace);
  let run: PolicyRun;
  switch (policy) {
    case 'ours':
      run = startOurs(world, clock, queues, options);
      break;
    case 'ours-warm':
      run = startOurs(world, clock, queues, options, true);
      break;
    case 'keda-default':
      run = startKeda(world, clock, queues, options, 'default');
      break;
    case 'keda-accurate':
      run = startKeda(world, clock, queues, options, 'accurate');
      break;
    case 'keda-eager':
      run = startKeda(world, clock, queues, options, 'eager');
      break;
    case 'agent-stack-k8s':
      run = startAgentStackK8s(world, clock, queues, options);
      break;
    case 'github-aws-runners':
      run = startGithubAwsRunners(world, clock, queues, options);
      break;
    case 'arc':
      run = startArc(world, clock, queues, options);
      break;
    case 'long-lived-job':
      run = startLongLivedJob(world, clock, queues, options);
      break;
    case 'job-per-ci-job':
      run = startJobPerCiJob(world, clock, options);
      break;
  }
  hooks.onStart?.({ world, clock, run });
  const sampleSeconds = options.sampleSeconds ?? defaultSampleSeconds(trace);
  world.startSampling(sampleSeconds);
  // Stop once every CI job is over and the agents left have had time to idle out; a guard ends a
  // run whose jobs can never all start (e.g. MAX_AGENTS 0).
  let tail = options.podStartupSeconds + options.idleTimeoutSeconds + options.agentExitSeconds + 1;
  // github-aws-runners' runners do not idle out: they last until a scale-down (every 5 min) finds
  // them idle past the minimum running time; their cost until then counts.
  if (policy === 'github-aws-runners')
    tail = Math.max(tail, GITHUB_AWS_RUNNERS.scaleDownEverySeconds + GITHUB_AWS_RUNNERS.minimumRunningTimeSeconds + 1);
  world.onAllTerminal = () => clock.after(tail * 1000, () => clock.stop());
  const span = Math.max(0, ...trace.map((j) => j.at));
  const work = trace.reduce((a, j) => a + j.duration, 0);
  clock.at((span + work + 3600 + tail) * 1000, () => clock.stop());
  await clock.run();

  const end = world.nowSeconds;
  const waits = world.jobs.flatMap((j) => (j.startedAt === undefined ? [] : [j.startedAt - j.trace.at]));
  const provisioned = world.provisionedSeconds(end);
  const used = world.usedUntil(end);
  const counters: Counters = run.counters();
  return {
    policy,
    jobs: trace.length,
    started: waits.length,
    cancelledBeforeStart: world.jobs.filter((j) => j.startedAt === undefined && j.state === 'cancelled').length,
    neverStarted: world.jobs.filter((j) => j.startedAt === undefined && j.state !== 'cancelled').length,
    interrupted: world.jobs.reduce((a, j) => a + j.interrupted, 0),
    wait: waitStats(waits),
    agentSeconds: {
      provisioned: round(provisioned),
      used: round(used),
      idle: round(provisioned - used),
      idleFraction: provisioned > 0 ? round((provisioned - used) / provisioned, 4) : 0,
    },
    maxInFlight: world.maxInFlight,
    maxInFlightByQueue: Object.fromEntries(queues.map((q) => [q, world.maxInFlightByQueue.get(q) ?? 0])),
    agentPods: world.pods.length,
    kubernetes: { jobs: counters.jobsCreated, apiCalls: sum(counters.kube), calls: counters.kube },
    aws: { requests: sum(counters.aws), calls: counters.aws, lambdaInvocations: counters.lambdaInvocations },
    endSeconds: round(end),
    errors: run.errors.slice(0, 20),
    waits: waits.map((w) => round(w)).sort((a, b) => a - b),
    series: world.series,
  };
}

/** Runs every asked policy on the same trace (each from a fresh, identical start). */
export async function simulate(
  trace: readonly TraceJob[],
  overrides: Partial<SimulationOptions> = {},
): Promise<SimulationReport> {
  const options: SimulationOptions = { ...DEFAULT_OPTIONS, ...overrides };
  const sampleSeconds = options.sampleSeconds ?? defaultSampleSeconds(trace);
  const results: PolicyResult[] = [];
  for (const policy of options.policies) {
    results.push(
      policy === 'oracle'
        ? oracle(trace, sampleSeconds)
        : await runPolicy(policy, trace, { ...options, sampleSeconds }),
    );
  }
  return {
    options,
    trace: {
      jobs: trace.length,
      queues: queuesOf(trace),
      spanSeconds: Math.max(0, ...trace.map((j) => j.at)),
      workSeconds: trace.reduce((a, j) => a + j.duration, 0),
    },
    results,
  };
}
