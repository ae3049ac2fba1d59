/** The pure back-off core: how a pod reads, and how a queue's step moves. */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { classifyPod, QueueBackoff } from '../../functions/core/backoff.js';

const T0 = Date.parse('2026-11-29T10:00:00Z');
const policy = { baseMs: 30_000, maxMs: 600_000, unschedulableMs: 300_000 };
const iso = (ms: number) => new Date(ms).toISOString();

function pod(name: string, status: V1PodStatus, opts: { queue?: string; job?: string; created?: number } = {}): V1Pod {
  return {
    metadata: {
      name,
      creationTimestamp: new Date(opts.created ?? T0),
      labels: { 'batch.kubernetes.io/job-name': opts.job ?? 'job-1' },
      annotations: { 'ci-autoscaler/queue': opts.queue ?? 'q' },
    },
    status,
  };
}

const waiting = (reason: string, message: string): V1PodStatus => ({
  phase: 'Pending',
  containerStatuses: [
    { name: 'agent', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message } } },
  ],
});

const failed = (startedAt: number, finishedAt: number, exitCode = 1): V1PodStatus => ({
  phase: 'Failed',
  startTime: new Date(startedAt),
  containerStatuses: [
    {
      name: 'agent',
      image: 'x',
      imageID: '',
      ready: false,
      restartCount: 0,
      state: {
        terminated: { exitCode, reason: 'Error', startedAt: new Date(startedAt), finishedAt: new Date(finishedAt) },
      },
    },
  ],
});

describe('classifyPod', () => {
  it('container errors Kubernetes reports for a start it cannot get past', () => {
    for (const reason of ['CreateContainerConfigError', 'ImagePullBackOff', 'ErrImagePull', 'InvalidImageName']) {
      expect(classifyPod(pod('p', waiting(reason, `why ${reason}`)), T0, policy)).toEqual({
        kind: 'failed',
        reason,
        message: `container agent: why ${reason}`,
      });
    }
    expect(classifyPod(pod('p', waiting('ContainerCreating', '')), T0, policy)).toEqual({ kind: 'starting' });
  });

  it('failed soon after start (a failed index) vs after a real run; evictions and deadlines are no signal', () => {
    expect(classifyPod(pod('p', failed(T0, T0 + 5_000)), T0 + 10_000, policy)).toMatchObject({
      kind: 'failed',
      reason: 'Error',
      message: 'container agent exited with code 1',
    });
    expect(classifyPod(pod('p', failed(T0, T0 + 120_000)), T0 + 130_000, policy)).toEqual({ kind: 'healthy' });
    const evicted = { ...failed(T0, T0 + 1_000), conditions: [{ type: 'DisruptionTarget', status: 'True' }] };
    expect(classifyPod(pod('p', evicted), T0, policy)).toEqual({ kind: 'ignored' });
    expect(classifyPod(pod('p', { phase: 'Failed', reason: 'DeadlineExceeded' }), T0, policy)).toEqual({
      kind: 'ignored',
    });
  });

  it('unschedulable only after the threshold; running healthy after the start window; succeeded healthy', () => {
    const unschedulable: V1PodStatus = {
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/3 nodes are available: 3 Insufficient memory.',
          lastTransitionTime: new Date(T0),
        },
      ],
    };
    expect(classifyPod(pod('p', unschedulable), T0 + 299_000, policy)).toEqual({ kind: 'starting' });
    expect(classifyPod(pod('p', unschedulable), T0 + 300_000, policy)).toEqual({
      kind: 'failed',
      reason: 'Unschedulable',
      message: '0/3 nodes are available: 3 Insufficient memory.',
    });
    const running: V1PodStatus = { phase: 'Running', startTime: new Date(T0) };
    expect(classifyPod(pod('p', running), T0 + 59_000, policy)).toEqual({ kind: 'starting' });
    expect(classifyPod(pod('p', running), T0 + 60_000, policy)).toEqual({ kind: 'healthy' });
    expect(classifyPod(pod('p', { phase: 'Succeeded' }), T0, policy)).toEqual({ kind: 'healthy' });
  });
});

describe('QueueBackoff', () => {
  it('one step per failing Job, exponential and capped; a probe at a time; reset by a newer healthy agent', () => {
    const b = new QueueBackoff(policy);
    let now = T0;
    expect(b.gate('q', now).allow).toBe(Number.POSITIVE_INFINITY);

    // Two failed pods of ONE Job: one step.
    const first = [
      pod('a', failed(now, now + 1_000), { job: 'j1' }),
      pod('b', failed(now, now + 1_000), { job: 'j1' }),
    ];
    now += 2_000;
    const events = b.observe(first, now);
    expect(events).toEqual([
      expect.objectContaining({ kind: 'backoff', queue: 'q', step: 1, holdMs: 30_000, reason: 'Error', jobName: 'j1' }),
    ]);
    expect(b.observe(first, now + 1_000)).toEqual([]); // seen already
    expect(b.gate('q', now + 29_000)).toMatchObject({ allow: 0, step: 1 });
    expect(b.gate('other', now)).toMatchObject({ allow: Number.POSITIVE_INFINITY }); // no starvation

    // Hold over: one probe; nothing more until it resolves.
    now += 30_000;
    expect(b.gate('q', now).allow).toBe(1);
    b.created('q', 'j2', now);
    expect(b.gate('q', now + 10_000).allow).toBe(0);
    const steps: number[] = [];
    let pods = first;
    for (let i = 2; i <= 8; i++) {
      pods = [...pods, pod(`p${i}`, failed(now, now + 1_000), { job: `j${i}`, created: now })];
      now += 2_000;
      const e = b.observe(pods, now);
      steps.push(e[0]?.kind === 'backoff' ? e[0].holdMs / 1000 : -1);
      now = b.gate('q', now).holdUntil;
      b.created('q', `j${i + 1}`, now);
    }
    expect(steps).toEqual([60, 120, 240, 480, 600, 600, 600]);

    // An OLD healthy agent (before the failures) does not reset; a newer one does.
    expect(b.observe([...pods, pod('old', { phase: 'Succeeded' }, { job: 'j0', created: T0 - 60_000 })], now)).toEqual(
      [],
    );
    const e = b.observe([...pods, pod('new', { phase: 'Succeeded' }, { job: 'j9', created: now })], now + 1_000);
    expect(e).toEqual([{ kind: 'recovered', queue: 'q', step: 8 }]);
    expect(b.gate('q', now + 1_000).allow).toBe(Number.POSITIVE_INFINITY);
  });

  it('a cold start re-learns the step from the failing Jobs still in the cluster', () => {
    const b = new QueueBackoff(policy);
    const pods = [1, 2, 3].map((i) => pod(`p${i}`, failed(T0 + i * 1000, T0 + i * 1000 + 500), { job: `j${i}` }));
    const events = b.observe(pods, T0 + 10_000);
    expect(events.map((e) => (e.kind === 'backoff' ? e.step : 0))).toEqual([1, 2, 3]);
    expect(b.gate('q', T0 + 10_000)).toMatchObject({ allow: 0, step: 3, holdUntil: T0 + 10_000 + 120_000 });
    expect(iso(b.gate('q', T0 + 10_000).holdUntil)).toBe('2026-11-29T10:02:10.000Z');
  });
});
