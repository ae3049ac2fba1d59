/** The pure back-off core: how a pod reads, and how a queue's step moves. */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { classifyPod, type JobStatusView, QueueBackoff } from '../../functions/core/backoff.js';

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
    // Held 30 s from when the agent failed (1 s before this look).
    expect(b.gate('q', now + 28_000)).toMatchObject({ allow: 0, step: 1, holdUntil: now - 1_000 + 30_000 });
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
    // The first failure alone holds nothing (HOLD_AFTER_FAILURES); the second and third are steps.
    expect(events.map((e) => (e.kind === 'backoff' ? [e.held, e.step] : []))).toEqual([
      [false, 0],
      [true, 1],
      [true, 2],
    ]);
    // Step 2 holds 60 s from when the latest of them failed, not from this first look.
    expect(b.gate('q', T0 + 10_000)).toMatchObject({ allow: 0, step: 2, holdUntil: T0 + 3_500 + 60_000 });
    expect(iso(b.gate('q', T0 + 10_000).holdUntil)).toBe('2026-11-29T10:01:03.500Z');
  });

  it('a cold start that lists a failure from long ago holds only what is left of it: one probe at once', () => {
    // Every invocation of a new process sees the same old Failed pod (its Job not finished yet):
    // it must not hold the queue for a whole new 30 s each time, or the queue never gets an agent.
    const old = [pod('p1', failed(T0, T0 + 500), { job: 'j1' }), pod('p2', failed(T0, T0 + 500), { job: 'j1' })];
    for (const seenAt of [T0 + 20_000, T0 + 40_000, T0 + 60_000]) {
      const fresh = new QueueBackoff(policy);
      expect(fresh.observe(old, seenAt)).toEqual([expect.objectContaining({ kind: 'backoff', step: 1 })]);
      expect(fresh.gate('q', seenAt).allow).toBe(seenAt < T0 + 500 + 30_000 ? 0 : 1);
    }
  });
});

describe('QueueBackoff.select: only suspicious Jobs have their pods looked at', () => {
  const job = (name: string, o: Partial<JobStatusView> = {}): JobStatusView => ({
    name,
    queue: 'q',
    created: T0,
    active: 10,
    ready: 10,
    failed: 0,
    succeeded: 0,
    ...o,
  });

  it('healthy Jobs none; a new failure its Failed pods once; not ready past the grace a sample', () => {
    const b = new QueueBackoff(policy);
    const now = T0 + 120_000;
    const healthy = [
      job('ready'),
      job('done', { active: 0, ready: 0, succeeded: 10 }),
      job('young', { ready: 0, created: now - 29_000 }),
    ];
    expect(b.select(healthy, now)).toEqual({ failed: [], sample: [] });

    // Queue r: a Job with a failed pod, a Job not ready past the grace. Their Failed pods, a
    // sample of the stuck one, and of r's Jobs since (less the start window) that may prove r
    // healthy in this same tick; not of r's older Jobs, nor of queue q.
    const r = (name: string, o: Partial<JobStatusView> = {}) => job(name, { queue: 'r', ...o });
    const jobs = [
      ...healthy,
      r('r-old', { created: T0 - 600_000 }),
      r('failing', { active: 9, ready: 9, failed: 1 }),
      r('stuck', { ready: 3 }),
      r('r-new', { created: T0 + 10_000 }),
      r('r-done', { active: 0, ready: 0, succeeded: 3, created: T0 + 20_000 }),
    ];
    expect(b.select(jobs, now)).toEqual({ failed: ['failing'], sample: ['failing', 'stuck', 'r-new', 'r-done'] });
    // The failed pod ran long (healthy): seen, so not looked at again until another pod fails.
    const longRun = pod('f', failed(T0, T0 + 100_000), { job: 'failing', queue: 'r' });
    expect(b.observe([longRun], now, { jobs, failed: new Set(['failing']), sample: new Set(['stuck']) })).toEqual([]);
    // (10 s later `young` is past the 30 s grace, still not ready: looked at too; q's older Jobs
    // cannot prove it healthy.)
    expect(b.select(jobs, now + 10_000)).toEqual({
      failed: [],
      sample: ['young', 'failing', 'stuck', 'r-new', 'r-done'],
    });
    const more = jobs.map((j) => (j.name === 'failing' ? { ...j, failed: 2 } : j));
    expect(b.select(more, now + 10_000).failed).toEqual(['failing']);
  });

  it('a failure found from a sample is one step; the queue then looks at its live Jobs until one proves healthy', () => {
    const b = new QueueBackoff(policy);
    let now = T0 + 40_000;
    const jobs = [
      job('pull', { ready: 0, created: T0 }),
      // Not ready either (waiting on the same image): nothing healthy outweighs the failure.
      job('other', { ready: 0, created: T0 }),
      job('old-done', { active: 0, ready: 0, succeeded: 1, created: T0 - 600_000 }),
    ];
    const sel = b.select(jobs, now);
    // The Job not ready, and `other` (live, as recent) that may prove the queue healthy.
    expect(sel).toEqual({ failed: [], sample: ['pull', 'other'] });
    // (`other` is not ready past the grace, and live: looked at either way.)
    const pulling = [0, 1].map((i) =>
      pod(`p${i}`, waiting('ErrImagePull', 'no such tag'), { job: 'pull', created: T0 + 1_000 }),
    );
    const scope = { jobs, failed: new Set(sel.failed), sample: new Set(sel.sample) };
    expect(b.observe(pulling, now, scope)).toEqual([
      expect.objectContaining({ kind: 'backoff', step: 1, reason: 'ErrImagePull', jobName: 'pull' }),
    ]);
    // Backing off: every live Job of the queue is looked at (the probe's verdict, or health).
    now += 30_000;
    b.created('q', 'probe', now);
    const withProbe = [...jobs, job('probe', { active: 1, ready: 0, created: now })];
    expect(b.select(withProbe, now + 10_000).sample).toEqual(['pull', 'other', 'probe']);
    // A Job that succeeded AFTER the failure proves the queue healthy by its status alone; an
    // older one (old-done) does not.
    expect(b.observe([], now + 10_000, { jobs: withProbe, failed: new Set(), sample: new Set() })).toEqual([]);
    const probeDone = withProbe.map((j) => (j.name === 'probe' ? { ...j, active: 0, ready: 0, succeeded: 1 } : j));
    expect(b.observe([], now + 20_000, { jobs: probeDone, failed: new Set(), sample: new Set() })).toEqual([
      { kind: 'recovered', queue: 'q', step: 1 },
    ]);
    // Healthy again: the Job counted is not looked at again although its pods still fail.
    // (`other` got ready meanwhile.)
    const settled = probeDone.map((j) => (j.name === 'other' ? { ...j, ready: j.active } : j));
    expect(b.select(settled, now + 30_000)).toEqual({ failed: [], sample: [] });
  });

  it('steps are not counted twice for a Job no longer looked at; a Job no longer listed is forgotten', () => {
    const b = new QueueBackoff(policy);
    const jobs = [job('j1', { active: 0, ready: 0, failed: 2 })];
    const f = [pod('a', failed(T0, T0 + 1_000), { job: 'j1' }), pod('b', failed(T0, T0 + 1_000), { job: 'j1' })];
    expect(b.observe(f, T0 + 2_000, { jobs, failed: new Set(['j1']), sample: new Set() })).toHaveLength(1);
    // Listed but not looked at: still counted (no second step when it is looked at again).
    expect(b.observe([], T0 + 3_000, { jobs, failed: new Set(), sample: new Set() })).toEqual([]);
    expect(b.observe(f, T0 + 4_000, { jobs, failed: new Set(), sample: new Set(['j1']) })).toEqual([]);
    expect(b.gate('q', T0 + 4_000)).toMatchObject({ step: 1 });
    // Gone from the cluster (TTL): forgotten; a Job of that name listed again would be new.
    b.observe([], T0 + 5_000, { jobs: [], failed: new Set(), sample: new Set() });
    expect(b.select(jobs, T0 + 6_000).failed).toEqual(['j1']);
  });

  it('a cold start: the failure and the newer agent that ran fine since are seen in one tick', () => {
    const b = new QueueBackoff(policy);
    const now = T0 + 200_000;
    const jobs = [
      job('broken', { active: 0, ready: 0, failed: 1, created: T0 }),
      job('fine', { active: 1, ready: 1, created: T0 + 10_000 }),
    ];
    const sel = b.select(jobs, now);
    expect(sel).toEqual({ failed: ['broken'], sample: ['fine'] });
    const pods = [
      pod('b0', failed(T0 + 1_000, T0 + 2_000), { job: 'broken', created: T0 }),
      pod('f0', { phase: 'Running', startTime: new Date(T0 + 12_000) }, { job: 'fine', created: T0 + 10_000 }),
    ];
    const events = b.observe(pods, now, { jobs, failed: new Set(sel.failed), sample: new Set(sel.sample) });
    // One failure, one healthy start: failures do not dominate, so nothing is held at all.
    expect(events).toEqual([expect.objectContaining({ kind: 'backoff', held: false, failures: 1, healthy: 1 })]);
    expect(b.gate('q', now).allow).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('QueueBackoff: held only while failures dominate', () => {
  const job = (name: string, o: Partial<JobStatusView> = {}): JobStatusView => ({
    name,
    queue: 'q',
    created: T0,
    active: 1,
    ready: 1,
    failed: 0,
    succeeded: 0,
    ...o,
  });
  const look = (b: QueueBackoff, jobs: JobStatusView[], pods: V1Pod[], now: number) => {
    const sel = b.select(jobs, now);
    return b.observe(pods, now, { jobs, failed: new Set(sel.failed), sample: new Set(sel.sample) });
  };

  it('a sporadic failure among healthy starts (a bad node, a spot reclaim) holds nothing and is no step', () => {
    const b = new QueueBackoff(policy);
    const now = T0 + 20_000;
    // A burst of 20 agents: 19 ready, one failed at start.
    const jobs = [
      ...Array.from({ length: 19 }, (_, i) => job(`ok${i}`)),
      job('bad-node', { active: 0, ready: 0, failed: 1 }),
    ];
    const events = look(b, jobs, [pod('x', failed(T0 + 3_000, T0 + 4_000), { job: 'bad-node' })], now);
    expect(events).toEqual([
      expect.objectContaining({ kind: 'backoff', held: false, step: 0, holdMs: 0, failures: 1, healthy: 19 }),
    ]);
    expect(b.gate('q', now)).toEqual({ allow: Number.POSITIVE_INFINITY, step: 0, holdUntil: 0 });
    expect(b.steps(now)).toEqual({ q: 0 });
    // Two more sporadic failures later in the window: still fewer than the healthy starts.
    for (const i of [1, 2]) {
      jobs.push(job(`bad${i}`, { active: 0, ready: 0, failed: 1, created: T0 + i * 10_000 }));
      look(b, jobs, [pod(`y${i}`, failed(T0 + i * 10_000, T0 + i * 10_000 + 500), { job: `bad${i}` })], now + i);
    }
    expect(b.gate('q', now + 3).allow).toBe(Number.POSITIVE_INFINITY);
  });

  it('failures that outnumber healthy starts hold the queue; its probe keeps the healthy capacity', () => {
    const b = new QueueBackoff(policy);
    let now = T0 + 20_000;
    // Half the nodes are bad: 3 agents started healthy, 4 failed at start.
    const jobs = [
      job('ok', { active: 3, ready: 3 }),
      ...[1, 2, 3, 4].map((i) => job(`bad${i}`, { active: 0, ready: 0, failed: 1, created: T0 + i })),
    ];
    const pods = [1, 2, 3, 4].map((i) => pod(`p${i}`, failed(T0 + i, T0 + 2_000), { job: `bad${i}`, created: T0 + i }));
    const events = look(b, jobs, pods, now);
    // The first three failures do not outnumber the 3 healthy starts; the fourth does.
    expect(events.map((e) => (e.kind === 'backoff' ? e.held : undefined))).toEqual([false, false, false, true]);
    expect(b.gate('q', now)).toMatchObject({ allow: 0, step: 1, holdUntil: T0 + 2_000 + 30_000 });
    now = T0 + 2_000 + 30_000;
    // The probe: as many agents as started healthy in the window, not one.
    expect(b.gate('q', now).allow).toBe(3);
    b.created('q', 'probe', now);
    expect(b.gate('q', now + 1_000).allow).toBe(0);
  });

  it('a persistent failure is held as before: one agent per probe, holds doubling; a first lone failure is retried', () => {
    const b = new QueueBackoff(policy);
    let now = T0;
    const jobs: JobStatusView[] = [];
    const pods: V1Pod[] = [];
    const holds: number[] = [];
    for (let i = 1; i <= 7; i++) {
      jobs.push(job(`j${i}`, { active: 0, ready: 0, failed: 1, created: now }));
      pods.push(pod(`p${i}`, failed(now, now + 1_000), { job: `j${i}`, created: now }));
      now += 2_000;
      const [e] = look(b, jobs, pods, now);
      holds.push(e?.kind === 'backoff' && e.held ? e.holdMs / 1000 : 0);
      // Not held: the next tick makes another agent at once.
      now = Math.max(now + 10_000, b.gate('q', now).holdUntil);
      expect(b.gate('q', now).allow).toBe(i === 1 ? Number.POSITIVE_INFINITY : 1);
      b.created('q', `j${i + 1}`, now);
    }
    expect(holds).toEqual([0, 30, 60, 120, 240, 480, 600]);
  });

  it('failures leave the window, except the newest: a long hold is not forgotten', () => {
    const b = new QueueBackoff({ ...policy, windowMs: 120_000 });
    const jobs = [job('bad', { active: 0, ready: 0, failed: 2 })];
    const bad = ['p', 'p2'].map((n) => pod(n, failed(T0, T0 + 1_000), { job: 'bad' }));
    look(b, jobs, bad, T0 + 2_000);
    expect(b.gate('q', T0 + 2_000).allow).toBe(0);
    // Long after the window, with healthy starts since: the old failure no longer counts.
    const later = T0 + 300_000;
    const withHealthy = [...jobs, job('ok', { created: later - 10_000, active: 1, ready: 1 })];
    const more = [...withHealthy, job('bad2', { active: 0, ready: 0, failed: 1, created: later - 5_000 })];
    const events = look(
      b,
      more,
      [pod('q2', failed(later - 5_000, later - 4_000), { job: 'bad2', created: later - 5_000 })],
      later,
    );
    expect(events).toEqual([expect.objectContaining({ kind: 'backoff', held: false, failures: 1, healthy: 1 })]);
    expect(b.gate('q', later).allow).toBe(Number.POSITIVE_INFINITY);
  });
});
