/**
 * How the back-off core reads what a real API server shows (issue 18): pods the server refuses
 * to create, pods stuck on a volume that cannot be mounted, pods the Job controller killed at the
 * Job's deadline.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  CREATE_GRACE_MS,
  classifyPod,
  createFailureReason,
  jobStatusView,
  QueueBackoff,
} from '../../functions/core/backoff.js';

const T0 = Date.parse('2026-11-29T10:00:00Z');
const policy = { baseMs: 30_000, maxMs: 600_000, unschedulableMs: 300_000 };

function job(name: string, status: V1Job['status'] = {}, created = T0): V1Job {
  return {
    metadata: { name, creationTimestamp: new Date(created), annotations: { 'ci-autoscaler/queue': 'q' } },
    status,
  };
}

describe('the reason an operator must fix, from the admission message', () => {
  it.each([
    ['exceeded quota: agents, requested: pods=1, used: pods=0, limited: pods=0', 'ResourceQuota'],
    ['failed quota: agents: must specify limits.cpu for: agent; limits.memory for: agent', 'ResourceQuota'],
    ['violates PodSecurity "restricted:latest": runAsNonRoot != true', 'PodSecurity'],
    ['error looking up service account ci-agents/gh: serviceaccount "gh" not found', 'ServiceAccountMissing'],
    ['maximum cpu usage per Container is 2, but limit is 4', 'LimitRange'],
    ['something else', 'FailedCreate'],
  ])('%s -> %s', (message, reason) => {
    expect(createFailureReason(message)).toBe(reason);
  });
});

describe('a Job whose pods the API server refuses', () => {
  it('is asked about (unstarted) only once it has had no pod for CREATE_GRACE_MS, and not when finished', () => {
    const b = new QueueBackoff(policy);
    const view = (j: V1Job) => jobStatusView(j)!;
    const fresh = view(job('fresh', {}, T0));
    const done = view(job('done', { conditions: [{ type: 'Failed', status: 'True' }] }, T0 - 60_000));
    const running = view(job('running', { active: 2, ready: 2 }, T0 - 60_000));
    const stuck = view(job('stuck', {}, T0 - CREATE_GRACE_MS));
    expect(b.select([fresh, done, running, stuck], T0).unstarted).toEqual(['stuck']);
  });

  it('one FailedCreate Event is one step, held from now, counted once', () => {
    const b = new QueueBackoff(policy);
    const j = jobStatusView(job('j1', {}, T0 - 60_000))!;
    const createFailures = new Map([
      ['j1', { message: 'Error creating: pods "j1-0-x" is forbidden: exceeded quota: q', at: T0 - 50_000 }],
    ]);
    const scope = { jobs: [j], failed: new Set<string>(), sample: new Set<string>(), createFailures };
    const events = b.observe([], T0, scope);
    expect(events).toEqual([
      expect.objectContaining({
        kind: 'backoff',
        queue: 'q',
        step: 1,
        reason: 'ResourceQuota',
        jobName: 'j1',
        pod: '',
      }),
    ]);
    expect(b.gate('q', T0 + 29_000)).toMatchObject({ allow: 0, step: 1 });
    expect(b.observe([], T0 + 1_000, scope)).toEqual([]);
  });
});

describe('a pod whose containers are never created (a volume that cannot be mounted)', () => {
  const creating = (scheduledAt: number): V1Pod => ({
    metadata: { name: 'p', creationTimestamp: new Date(scheduledAt) },
    status: {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: new Date(scheduledAt) }],
      initContainerStatuses: [
        {
          name: 'jitconfig',
          image: 'x',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'PodInitializing' } },
        },
      ],
      containerStatuses: [
        {
          name: 'runner',
          image: 'x',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'PodInitializing' } },
        },
      ],
    },
  });

  it('is starting for unschedulableMs, then failed with a reason that names the likely cause', () => {
    expect(classifyPod(creating(T0), T0 + 299_000, policy)).toEqual({ kind: 'starting' });
    expect(classifyPod(creating(T0), T0 + 300_000, policy)).toMatchObject({
      kind: 'failed',
      reason: 'ContainerCreating',
      message: expect.stringMatching(/missing Secret/),
    });
  });
});

/** An agent pod ended Failed by SIGTERM (143) at `finishedAt`, deleted (then) or not. */
const killed = (finishedAt: number, deleted: boolean): V1Pod => ({
  metadata: {
    name: 'p',
    creationTimestamp: new Date(T0),
    labels: { 'batch.kubernetes.io/job-name': 'j' },
    annotations: { 'ci-autoscaler/queue': 'q' },
    ...(deleted ? { deletionTimestamp: new Date(finishedAt) } : {}),
  },
  status: {
    phase: 'Failed',
    startTime: new Date(T0),
    containerStatuses: [
      {
        name: 'agent',
        image: 'x',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: {
          terminated: { exitCode: 143, reason: 'Error', startedAt: new Date(T0), finishedAt: new Date(finishedAt) },
        },
      },
    ],
  },
});

describe('a pod the Job controller killed at the Job deadline', () => {
  const deadlineJob = (at: number) =>
    jobStatusView(
      job('j', {
        failed: 1,
        conditions: [
          { type: 'FailureTarget', status: 'True', reason: 'DeadlineExceeded', lastTransitionTime: new Date(at) },
          { type: 'Failed', status: 'True', reason: 'DeadlineExceeded', lastTransitionTime: new Date(at + 2_000) },
        ],
      }),
    )!;

  it('reads the deadline from the Job (FailureTarget, reason DeadlineExceeded)', () => {
    expect(deadlineJob(T0 + 10_000)).toMatchObject({ finished: true, deadlineAt: T0 + 10_000 });
  });

  it('is no start failure, deleted or ended at the deadline; a pod that failed before it still is', () => {
    const scope = (j: ReturnType<typeof deadlineJob>) => ({
      jobs: [j],
      failed: new Set(['j']),
      sample: new Set<string>(),
    });
    for (const pod of [killed(T0 + 10_000, true), killed(T0 + 10_000, false)]) {
      const b = new QueueBackoff(policy);
      expect(b.observe([pod], T0 + 20_000, scope(deadlineJob(T0 + 10_000)))).toEqual([]);
    }
    const b = new QueueBackoff(policy);
    // Reported as a start failure (a lone one holds nothing: back-off holds while failures dominate).
    expect(b.observe([killed(T0 + 5_000, false)], T0 + 20_000, scope(deadlineJob(T0 + 10_000)))).toEqual([
      expect.objectContaining({ kind: 'backoff', reason: 'Error', pod: 'p' }),
    ]);
  });
});

describe('a pod stopped by the scaler as surplus (deleted), in a Job with no deadline', () => {
  it('is no start failure however it ends: an agent image without SIGTERM handling ends Failed, 143', () => {
    const j = jobStatusView(job('j', { failed: 1, active: 2 }))!;
    const scope = { jobs: [j], failed: new Set(['j']), sample: new Set<string>() };
    expect(new QueueBackoff(policy).observe([killed(T0 + 5_000, true)], T0 + 10_000, scope)).toEqual([]);
    // The same pod, not deleted, is a start failure.
    expect(new QueueBackoff(policy).observe([killed(T0 + 5_000, false)], T0 + 10_000, scope)).toEqual([
      expect.objectContaining({ kind: 'backoff', reason: 'Error', pod: 'p' }),
    ]);
  });
});
