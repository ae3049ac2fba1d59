/**
 * The fake API server and its job controller behave like Kubernetes where the scaler depends on
 * it — above all: one failed agent does not fail or kill its siblings.
 */

import type { V1Job } from '@kubernetes/client-node';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IJobList } from 'kubernetes-models/batch/v1/JobList';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPodList } from 'kubernetes-models/v1/PodList';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildAgentJob, isFinished, liveAgents } from '../../functions/core/agent-job.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';
import type { StatusBody } from '../../tools/fakes/kube/status.js';

const NS = 'ci-agents';
let kube: FakeKube;

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 't' },
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'buildkite/agent:3' }] } } },
};

function agentJob(name: string, count: number): V1Job {
  return buildAgentJob(template, {
    namespace: NS,
    queue: 'linux',
    dispatchId: name,
    jobName: name,
    count,
    ttlSecondsAfterFinished: 60,
    activeDeadlineSeconds: 600,
  });
}

/** One request; `T` names the kind of answer the caller expects (JSON, as the server sent it). */
async function api<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(kube.url + path, {
    method,
    headers: { authorization: `Bearer ${kube.token}`, 'content-type': 'application/json', ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

const jobsPath = `/apis/batch/v1/namespaces/${NS}/jobs`;
const condition = (job: V1Job | undefined, type: string) =>
  job?.status?.conditions?.find((c) => c.type === type && c.status === 'True');

beforeAll(async () => {
  kube = await startFakeKube({ namespace: NS });
});
afterAll(async () => kube?.stop());
beforeEach(() => kube.reset());

describe('job controller', () => {
  it('keeps siblings running when one agent pod fails (backoffLimitPerIndex 0)', async () => {
    expect((await api('POST', jobsPath, agentJob('batch-a', 3))).status).toBe(201);
    kube.startAll('batch-a');
    const [p0, p1, p2] = kube.pods({ jobName: 'batch-a' });
    kube.failPod(p1!.metadata!.name!);

    let job = kube.job('batch-a')!;
    expect(isFinished(job)).toBe(false);
    expect(job.status).toMatchObject({ active: 2, ready: 2, failed: 1, failedIndexes: '1' });
    expect(kube.pods({ jobName: 'batch-a', phase: 'Running' }).map((p) => p.metadata!.name)).toEqual(
      [p0, p2].map((p) => p!.metadata!.name),
    );
    // Not retried: no new pod for index 1.
    expect(kube.pods({ jobName: 'batch-a' })).toHaveLength(3);
    expect(liveAgents(job)).toBe(2);

    kube.succeedPod(p0!.metadata!.name!);
    kube.succeedPod(p2!.metadata!.name!);
    job = kube.job('batch-a')!;
    expect(condition(job, 'Failed')?.reason).toBe('FailedIndexes');
    expect(job.status).toMatchObject({ succeeded: 2, failed: 1, completedIndexes: '0,2', failedIndexes: '1' });
    expect(liveAgents(job)).toBe(0);
  });

  it('contrast: a plain backoffLimit 0 fails the whole Job and kills the running siblings', async () => {
    const job = agentJob('plain', 3);
    delete job.spec!.backoffLimitPerIndex;
    delete job.spec!.podFailurePolicy;
    job.spec!.backoffLimit = 0;
    expect((await api('POST', jobsPath, job)).status).toBe(201);
    kube.startAll('plain');
    kube.failPod(kube.pods({ jobName: 'plain' })[0]!.metadata!.name!);
    expect(condition(kube.job('plain'), 'Failed')?.reason).toBe('BackoffLimitExceeded');
    expect(kube.pods({ jobName: 'plain', phase: 'Running' })).toHaveLength(0);
  });

  it('replaces an evicted pod (DisruptionTarget is ignored) without counting a failure', async () => {
    await api('POST', jobsPath, agentJob('evict', 2));
    const victim = kube.pods({ jobName: 'evict' })[0]!;
    kube.failPod(victim.metadata!.name!, { disruption: true });
    const job = kube.job('evict')!;
    expect(job.status?.failed).toBeUndefined();
    const active = kube.pods({ jobName: 'evict' }).filter((p) => p.status?.phase === 'Pending');
    expect(active.map((p) => p.metadata!.labels!['batch.kubernetes.io/job-completion-index']).sort()).toEqual([
      '0',
      '1',
    ]);
    expect(liveAgents(job)).toBe(2);
  });

  it('completes when every index succeeded', async () => {
    await api('POST', jobsPath, agentJob('ok', 2));
    kube.startAll();
    expect(kube.job('ok')!.status).toMatchObject({ active: 2, ready: 2 });
    kube.succeedAll('ok');
    const job = kube.job('ok')!;
    expect(condition(job, 'Complete')).toBeDefined();
    expect(job.status).toMatchObject({ succeeded: 2, completedIndexes: '0,1' });
    expect(job.status?.completionTime).toBeDefined();
  });

  it('fails with DeadlineExceeded when the deadline passes: its active pods are deleted, end Failed and count as failed', async () => {
    await api('POST', jobsPath, agentJob('slow', 2));
    kube.startAll();
    kube.expireDeadline('slow');
    const job = kube.job('slow');
    expect(condition(job, 'FailureTarget')?.reason).toBe('DeadlineExceeded');
    expect(condition(job, 'Failed')?.reason).toBe('DeadlineExceeded');
    expect(job?.status).toMatchObject({ failed: 2 });
    expect(job?.status?.active ?? 0).toBe(0);
    const pods = kube.pods({ jobName: 'slow' });
    expect(pods.map((p) => p.status?.phase)).toEqual(['Failed', 'Failed']);
    expect(pods.every((p) => p.metadata?.deletionTimestamp !== undefined)).toBe(true);
    expect(pods.map((p) => p.status?.containerStatuses?.[0]?.state?.terminated?.exitCode)).toEqual([143, 143]);
  });

  it('pods carry the job controller labels and owner reference', async () => {
    await api('POST', jobsPath, agentJob('lbl', 1));
    const job = kube.job('lbl')!;
    const [pod] = kube.pods({ jobName: 'lbl' });
    expect(pod!.metadata!.labels).toMatchObject({
      'job-name': 'lbl',
      'batch.kubernetes.io/job-name': 'lbl',
      'batch.kubernetes.io/job-completion-index': '0',
      'controller-uid': job.metadata!.uid,
      'batch.kubernetes.io/controller-uid': job.metadata!.uid,
      'app.kubernetes.io/managed-by': 'ci-agent-autoscaler',
    });
    expect(pod!.metadata!.ownerReferences?.[0]).toMatchObject({
      kind: 'Job',
      name: 'lbl',
      uid: job.metadata!.uid,
      controller: true,
    });
    const listed = await api<IPodList>('GET', `/api/v1/namespaces/${NS}/pods?labelSelector=job-name%3Dlbl`);
    expect(listed.body.items).toHaveLength(1);
    expect((await api<IPod>('GET', `/api/v1/namespaces/${NS}/pods/${pod!.metadata!.name}`)).body.metadata!.name).toBe(
      pod!.metadata!.name,
    );
  });

  it('runs pods on its own in autoRun mode', async () => {
    const sim = await startFakeKube({ autoRun: { startMs: 10, runMs: 20 } });
    try {
      await fetch(`${sim.url}${jobsPath}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${sim.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(agentJob('auto', 2)),
      });
      await new Promise((r) => setTimeout(r, 120));
      expect(condition(sim.job('auto'), 'Complete')).toBeDefined();
    } finally {
      await sim.stop();
    }
  });
});

describe('API semantics', () => {
  it('409 AlreadyExists and 404 NotFound with real Status bodies', async () => {
    await api('POST', jobsPath, agentJob('dup', 1));
    const again = await api('POST', jobsPath, agentJob('dup', 1));
    expect(again.status).toBe(409);
    expect(again.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'jobs.batch "dup" already exists',
      reason: 'AlreadyExists',
      details: { name: 'dup', group: 'batch', kind: 'jobs' },
      code: 409,
    });
    const missing = await api('GET', `${jobsPath}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({
      kind: 'Status',
      reason: 'NotFound',
      code: 404,
      details: { name: 'nope', group: 'batch', kind: 'jobs' },
    });
  });

  it.each([
    ['a name over 63 characters', (j: V1Job) => (j.metadata!.name = 'a'.repeat(64)), 'metadata'],
    ['a non-DNS name', (j: V1Job) => (j.metadata!.name = 'Bad_Name'), 'metadata.name'],
    ['no name', (j: V1Job) => delete j.metadata!.name, 'metadata.name'],
    [
      'restartPolicy Always',
      (j: V1Job) => (j.spec!.template.spec!.restartPolicy = 'Always'),
      'spec.template.spec.restartPolicy',
    ],
    [
      'podFailurePolicy with OnFailure',
      (j: V1Job) => (j.spec!.template.spec!.restartPolicy = 'OnFailure'),
      'spec.template.spec.restartPolicy',
    ],
    ['negative parallelism', (j: V1Job) => (j.spec!.parallelism = -1), 'spec.parallelism'],
    ['Indexed without completions', (j: V1Job) => delete j.spec!.completions, 'spec.completions'],
  ])('422 Invalid for %s', async (_name, mutate, field) => {
    const job = agentJob('v', 1);
    mutate(job);
    const res = await api<StatusBody>('POST', jobsPath, job);
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Invalid', code: 422 });
    expect(res.body.details!.causes!.some((c) => c.field!.startsWith(field))).toBe(true);
    expect(kube.jobs()).toHaveLength(0);
  });

  it('label selectors: equality, !=, in, notin, exists, !exists', async () => {
    const mk = (name: string, labels: Record<string, string>) =>
      kube.seedJob({ ...agentJob(name, 1), metadata: { name, namespace: NS, labels } });
    mk('j-a', { tier: 'a', env: 'prod' });
    mk('j-b', { tier: 'b' });
    mk('j-c', { tier: 'c', env: 'dev' });
    const names = async (sel: string) =>
      (await api<IJobList>('GET', `${jobsPath}?labelSelector=${encodeURIComponent(sel)}`)).body.items.map(
        (j) => j.metadata!.name,
      );
    expect(await names('tier=a')).toEqual(['j-a']);
    expect(await names('tier==b')).toEqual(['j-b']);
    expect(await names('tier!=a')).toEqual(['j-b', 'j-c']);
    expect(await names('tier in (a, c)')).toEqual(['j-a', 'j-c']);
    expect(await names('tier notin (a)')).toEqual(['j-b', 'j-c']);
    expect(await names('env')).toEqual(['j-a', 'j-c']);
    expect(await names('!env')).toEqual(['j-b']);
    expect(await names('env,tier in (c,b)')).toEqual(['j-c']);
    expect((await api('GET', `${jobsPath}?labelSelector=${encodeURIComponent('tier in (a')}`)).status).toBe(400);
  });

  it('paginates with an opaque continue token and a stable resourceVersion', async () => {
    for (const n of ['p1', 'p2', 'p3']) await api('POST', jobsPath, agentJob(n, 1));
    const first = await api<IJobList>('GET', `${jobsPath}?limit=2`);
    expect(first.body.kind).toBe('JobList');
    expect(first.body.items.map((j) => j.metadata!.name)).toEqual(['p1', 'p2']);
    expect(first.body.items[0]!.kind).toBeUndefined();
    expect(first.body.metadata!.remainingItemCount).toBe(1);
    const token = first.body.metadata!.continue;
    expect(typeof token).toBe('string');
    const second = await api<IJobList>('GET', `${jobsPath}?limit=2&continue=${encodeURIComponent(token!)}`);
    expect(second.body.items.map((j) => j.metadata!.name)).toEqual(['p3']);
    expect(second.body.metadata!.continue).toBeUndefined();
    expect((await api('GET', `${jobsPath}?limit=2&continue=garbage`)).status).toBe(400);
  });

  it('resourceVersion grows with every change; uid and creationTimestamp are set', async () => {
    const created = (await api<IJob>('POST', jobsPath, agentJob('rv', 1))).body;
    expect(created.metadata!.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata!.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    kube.startAll();
    const after = kube.job('rv')!;
    expect(Number(after.metadata!.resourceVersion)).toBeGreaterThan(Number(created.metadata!.resourceVersion));
    const stale = await api<StatusBody>('PUT', `${jobsPath}/rv`, created);
    expect(stale.status).toBe(409);
    expect(stale.body.reason).toBe('Conflict');
  });

  it('status subresource: GET and PUT', async () => {
    await api('POST', jobsPath, agentJob('st', 1));
    const got = await api<IJob>('GET', `${jobsPath}/st/status`);
    expect(got.body.status!.active).toBe(1);
    const put = await api('PUT', `${jobsPath}/st/status`, { ...got.body, status: { ...got.body.status, ready: 1 } });
    expect(put.status).toBe(200);
    expect(kube.job('st')!.status!.ready).toBe(1);
    expect(kube.calls.slice(-2)).toEqual([
      { verb: 'get', group: 'batch', resource: 'jobs', subresource: 'status', namespace: NS, name: 'st' },
      { verb: 'update', group: 'batch', resource: 'jobs', subresource: 'status', namespace: NS, name: 'st' },
    ]);
  });

  it('DELETE without propagationPolicy orphans the pods (the batch/v1 default); Background removes them', async () => {
    await api('POST', jobsPath, agentJob('orph', 1));
    await api('POST', jobsPath, agentJob('bg', 1));
    const del = await api('DELETE', `${jobsPath}/orph`);
    expect(del.body).toMatchObject({
      kind: 'Status',
      status: 'Success',
      details: { name: 'orph', group: 'batch', kind: 'jobs' },
    });
    expect(kube.pods({ jobName: 'orph' })).toHaveLength(1);
    expect(kube.pods({ jobName: 'orph' })[0]!.metadata!.ownerReferences).toBeUndefined();
    await api('DELETE', `${jobsPath}/bg?propagationPolicy=Background`);
    expect(kube.pods({ jobName: 'bg' })).toHaveLength(0);
    expect((await api('DELETE', `${jobsPath}/bg`)).status).toBe(404);
  });

  it('discovery and auth', async () => {
    expect(
      (await api<{ resources: { name: string }[] }>('GET', '/apis/batch/v1')).body.resources.map((r) => r.name),
    ).toContain('jobs');
    expect((await api<{ versions: string[] }>('GET', '/api')).body.versions).toEqual(['v1']);
    const res = await fetch(kube.url + jobsPath, { headers: { authorization: 'Bearer nope' } });
    expect(res.status).toBe(401);
  });

  it('fault injection: 429 with Retry-After, then normal service', async () => {
    kube.failNext('GET', '/jobs', 429, 1, { retryAfterSeconds: 3 });
    const limited = await api('GET', jobsPath);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');
    expect(limited.body).toMatchObject({ reason: 'TooManyRequests', details: { retryAfterSeconds: 3 } });
    expect((await api('GET', jobsPath)).status).toBe(200);
  });
});
