/**
 * The peers' policies, each checked against a case of its own project's tests or docs (cited),
 * then run in the simulator.
 */
import { describe, expect, it } from 'vitest';
import {
  type ArcScalerState,
  arcIdleRunnersToDelete,
  arcScaleAction,
  arcSetDesiredWorkerState,
  arcTargetRunners,
  githubAwsMinimumTimeExceeded,
  githubAwsNewRunners,
  kedaEffectiveMaxScale,
  kedaJobsToCreate,
} from '../../tools/simulate/peers.js';
import { DEFAULT_OPTIONS, runPolicy, type SimulationOptions } from '../../tools/simulate/simulate.js';
import type { TraceJob } from '../../tools/simulate/trace.js';

const exact: Partial<SimulationOptions> = {
  podStartupSeconds: 15,
  idleTimeoutSeconds: 60,
  agentExitSeconds: 0,
  webhookLatencySeconds: 0.5,
  awsLatencyMs: 0,
  kubeLatencyMs: 0,
  minAgents: 0,
  maxAgents: 10,
};
const job = (id: string, at: number, duration: number): TraceJob => ({ id, at, queue: 'default', duration });
const maxScale = ([m]: [number, number]) => m;

describe('KEDA ScaledJob (kedacore/keda pkg/scaling/executor/scale_jobs_test.go)', () => {
  it('default strategy: TestDefaultScalingStrategy', () => {
    expect(maxScale(kedaEffectiveMaxScale('default', 3, 2, 0, 5, 1))).toBe(1);
    expect(maxScale(kedaEffectiveMaxScale('default', 2, 0, 0, 5, 1))).toBe(2);
  });

  it('accurate strategy: TestAccurateScalingStrategy', () => {
    const cases: [number, number, number, number, number][] = [
      [3, 2, 0, 5, 3],
      [5, 2, 0, 5, 3],
      [3, 4, 2, 10, 1],
      [5, 4, 2, 5, 1],
      [3, 3, 3, 5, 0],
      [15, 15, 15, 20, 0],
      [10, 10, 10, 15, 0],
      [20, 15, 10, 20, 5],
    ];
    for (const [m, running, pending, max, want] of cases)
      expect(maxScale(kedaEffectiveMaxScale('accurate', m, running, pending, max, 1))).toBe(want);
  });

  it('eager strategy: TestEagerScalingStrategy', () => {
    expect(kedaEffectiveMaxScale('eager', 4, 3, 0, 10, 1)).toEqual([4, 10]);
    expect(kedaEffectiveMaxScale('eager', 4, 0, 3, 10, 1)).toEqual([4, 10]);
    expect(kedaEffectiveMaxScale('eager', 4, 7, 0, 10, 1)).toEqual([3, 10]);
    expect(kedaEffectiveMaxScale('eager', 4, 1, 6, 10, 1)).toEqual([3, 10]);
    expect(kedaEffectiveMaxScale('eager', 15, 0, 0, 10, 1)).toEqual([10, 10]);
  });

  it('fewer running Jobs than minReplicaCount: TestRunningJobCountSmallerMinReplicaCount', () => {
    // minReplicaCount 2, nothing running: 2 Jobs, whatever the queue.
    expect(
      kedaJobsToCreate('default', { queueLength: 0, running: 0, pending: 0, minReplicaCount: 2, maxReplicaCount: 100 }),
    ).toBe(2);
  });

  it('the default strategy subtracts running Jobs from the queue: waits pile up behind busy agents', async () => {
    // 4 jobs arrive at once, 2 more 40 s later while the first 4 run: default creates
    // maxScale - running = 2 - 4 < 0 Jobs at the 60 s poll, accurate creates 2.
    const trace = [
      job('a', 1, 300),
      job('b', 1, 300),
      job('c', 1, 300),
      job('d', 1, 300),
      job('e', 40, 60),
      job('f', 40, 60),
    ];
    const d = await runPolicy('keda-default', trace, { ...DEFAULT_OPTIONS, ...exact });
    const a = await runPolicy('keda-accurate', trace, { ...DEFAULT_OPTIONS, ...exact });
    // Polls at 0, 30, 60, ...: the first four get Jobs at 30 (ready 45: wait 44); accurate gives
    // e and f Jobs at the 60 s poll (ready 75: wait 35).
    expect(a.waits).toEqual([35, 35, 44, 44, 44, 44]);
    // default: not until the first four Jobs finished (45 + 300 = 345 -> poll 360, ready 375).
    expect(d.waits).toEqual([44, 44, 44, 44, 335, 335]);
  });
});

describe('agent-stack-k8s (buildkite/agent-stack-k8s internal/controller/limiter/limiter_test.go)', () => {
  it('TestLimiter: with max-in-flight 1 every job still runs, one Job at a time', async () => {
    const trace = Array.from({ length: 5 }, (_, i) => job(`j${i}`, 0.2, 10));
    const r = await runPolicy('agent-stack-k8s', trace, { ...DEFAULT_OPTIONS, ...exact, maxAgents: 1 });
    expect(r.started).toBe(5);
    expect(r.maxInFlight).toBe(1);
    expect(r.kubernetes.jobs).toBe(5);
    // Polled every second: the first job's Job at 1 s, ready at 16; each next one the poll
    // after the previous agent exited.
    expect(r.waits[0]).toBeCloseTo(15.8, 5);
    expect(r.waits).toEqual([...r.waits].sort((x, y) => x - y));
  });
});

describe('github-aws-runners (lambdas/functions/control-plane/src/scale-runners/*.test.ts)', () => {
  it('scale-up: never past runners_maximum_count (RUNNERS_MAXIMUM_COUNT 3 in the tests), -1 is unlimited', () => {
    expect(githubAwsNewRunners(1, 3, 3)).toBe(0);
    expect(githubAwsNewRunners(2, 2, 3)).toBe(1);
    expect(githubAwsNewRunners(5, 10, -1)).toBe(5);
  });

  it('scale-down: "Should respect idle runner with minimum running time not exceeded"', () => {
    const minimum = 300;
    expect(githubAwsMinimumTimeExceeded(0, minimum - 60, minimum)).toBe(false);
    expect(githubAwsMinimumTimeExceeded(0, minimum + 240, minimum)).toBe(true);
  });

  it('a runner starts 30 s after the webhook, stays for the next job, and goes at the first scale-down past 5 min', async () => {
    const r = await runPolicy('github-aws-runners', [job('a', 0, 60), job('b', 200, 30)], {
      ...DEFAULT_OPTIONS,
      ...exact,
    });
    // a: webhook 0.5, scale-up 30.5, runner ready 45.5. b: the same runner takes it at once.
    expect(r.waits).toEqual([0, 45.5]);
    expect(r.kubernetes.jobs).toBe(1);
    // Scale-down at 300: launched 30.5, minimum not reached; at 600 it is terminated.
    expect(r.agentSeconds.provisioned).toBeCloseTo(600 - 30.5, 3);
  });
});

describe('ARC scale sets (actions/actions-runner-controller cmd/ghalistener/scaler/scaler_test.go)', () => {
  const fresh = (): ArcScalerState => ({ targetRunners: -1, patchSeq: -1, dirty: false });
  const maxInt32 = 2 ** 31 - 1;

  it('TestSetDesiredWorkerState_MinMaxDefaults: the patch ID, 0 only when nothing happened at minRunners', () => {
    // "init calculate with acquired 0" / "... acquired 1"
    let w = fresh();
    expect(arcSetDesiredWorkerState(w, 0, maxInt32, 0)).toBe(0);
    expect(w).toEqual({ targetRunners: 0, patchSeq: 0, dirty: false });
    w = fresh();
    expect(arcSetDesiredWorkerState(w, 0, maxInt32, 1)).toBe(0);
    expect(w.targetRunners).toBe(1);
    // "increment patch when job done"
    w.dirty = true;
    expect(arcSetDesiredWorkerState(w, 0, maxInt32, 0)).toBe(1);
    expect(w).toEqual({ targetRunners: 0, patchSeq: 1, dirty: false });
    // "increment patch when called with same parameters"
    w = fresh();
    arcSetDesiredWorkerState(w, 0, maxInt32, 1);
    expect(arcSetDesiredWorkerState(w, 0, maxInt32, 1)).toBe(1);
  });

  it('TestSetDesiredWorkerState_MinSet: "desired patch is 0 but sequence continues on empty batch and min runners"', () => {
    const w = fresh();
    expect(arcSetDesiredWorkerState(w, 1, maxInt32, 3)).toBe(0);
    expect(w.targetRunners).toBe(4);
    w.dirty = true;
    expect(arcSetDesiredWorkerState(w, 1, maxInt32, 0)).toBe(1);
    expect(w.targetRunners).toBe(1);
    // Empty batch on min runners: forcing the state.
    expect(arcSetDesiredWorkerState(w, 1, maxInt32, 0)).toBe(0);
    expect(w).toEqual({ targetRunners: 1, patchSeq: 2, dirty: false });
  });

  it('ephemeralrunnerset_controller.go: creates once per patch, deletes only on patch ID 0, idle registered runners oldest first', () => {
    expect(arcScaleAction({ total: 2, replicas: 5, patchID: 3, latestPatchID: 2 })).toEqual({ create: 3 });
    // The runners of this patch exist already: a finished one is not replaced until the next patch.
    expect(arcScaleAction({ total: 2, replicas: 5, patchID: 3, latestPatchID: 3 })).toBeUndefined();
    // "If ephemeral runner did not yet update the phase to succeeded, but the scale down request is issued, we should ignore"
    expect(arcScaleAction({ total: 6, replicas: 2, patchID: 4, latestPatchID: 3 })).toBeUndefined();
    expect(arcScaleAction({ total: 6, replicas: 2, patchID: 0, latestPatchID: 3 })).toEqual({ delete: 4 });
    const r = (createdAt: number, phase: 'pending' | 'running', registered = true, hasJob = false) => ({
      createdAt,
      phase,
      registered,
      hasJob,
    });
    const runners = [
      r(5, 'running'),
      r(1, 'running', true, true),
      r(4, 'pending'),
      r(2, 'pending', false),
      r(3, 'running'),
    ];
    expect(arcIdleRunnersToDelete(runners, 3).map((x) => x.createdAt)).toEqual([4, 3, 5]);
    expect(arcIdleRunnersToDelete(runners, 0)).toEqual([]);
  });

  it('TestSetDesiredWorkerState: target = min(minRunners + assigned jobs, maxRunners)', () => {
    expect(arcTargetRunners(0, maxInt32, 0)).toBe(0); // "init calculate with acquired 0"
    expect(arcTargetRunners(0, maxInt32, 1)).toBe(1); // "init calculate with acquired 1"
    expect(arcTargetRunners(1, maxInt32, 0)).toBe(1); // MinSet: "initial scale when acquired == 0"
    expect(arcTargetRunners(2, 5, 10)).toBe(5);
  });

  it('keeps minRunners ready: a job finds a runner waiting, and the runner is replaced after it', async () => {
    const r = await runPolicy('arc', [job('a', 100, 30), job('b', 300, 30)], {
      ...DEFAULT_OPTIONS,
      ...exact,
      minAgents: 1,
    });
    expect(r.waits).toEqual([0, 0]);
    // One runner waiting at all times (never times out) plus the ones that ran the jobs.
    expect(r.maxInFlightByQueue.default).toBeLessThanOrEqual(2);
  });
});
