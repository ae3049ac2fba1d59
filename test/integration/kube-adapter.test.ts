import type { V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { KubeApiError, RetryableKubeError } from '../../functions/adapters/kubernetes/errors.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { AGENT_JOB_SELECTOR, buildAgentJob, jobNameFor, liveAgents } from '../../functions/core/agent-job.js';
import type { ClusterPort } from '../../functions/scaler/ports.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';

const NS = 'ci-agents';
let kube: FakeKube;
let cluster: ClusterPort;
let template: V1Job;

function agentJob(queue: string, dispatchId: string, count: number): V1Job {
  return buildAgentJob(template, {
    namespace: NS,
    queue,
    dispatchId,
    jobName: jobNameFor(queue, dispatchId),
    count,
    ttlSecondsAfterFinished: 600,
    activeDeadlineSeconds: 3600,
  });
}

beforeAll(async () => {
  kube = await startFakeKube({ namespace: NS });
  cluster = await createCluster({ kind: 'kubeconfig-file', path: kube.kubeconfigPath }, NS, {
    // The product's default; a shorter one fails on a loaded machine (see the timeout test).
    timeoutMs: 5000,
    pageSize: 2,
  });
  template = await loadTemplate('buildkite');
});
afterAll(async () => kube?.stop());
beforeEach(() => kube.reset());

describe('Kubernetes adapter against the fake API server (real @kubernetes/client-node)', () => {
  it('creates a Job with the batch, and the job controller starts one pod per agent', async () => {
    expect(await cluster.createJob(agentJob('linux', 'd-1', 3))).toBe('created');
    const [job] = kube.jobs(NS);
    expect(job?.metadata?.name).toBe(jobNameFor('linux', 'd-1'));
    expect(job?.spec).toMatchObject({
      completions: 3,
      parallelism: 3,
      completionMode: 'Indexed',
      backoffLimitPerIndex: 0,
    });
    const pods = kube.pods({ jobName: job!.metadata!.name! });
    expect(pods.map((p) => p.metadata!.labels!['batch.kubernetes.io/job-completion-index']).sort()).toEqual([
      '0',
      '1',
      '2',
    ]);
    expect(pods.every((p) => p.status?.phase === 'Pending')).toBe(true);
    expect(kube.calls).toEqual([{ verb: 'create', group: 'batch', resource: 'jobs', namespace: NS }]);
  });

  it('answers "exists" for a retried dispatch (409 AlreadyExists) and creates nothing more', async () => {
    const job = agentJob('linux', 'd-2', 2);
    expect(await cluster.createJob(job)).toBe('created');
    expect(await cluster.createJob(job)).toBe('exists');
    expect(kube.jobs(NS)).toHaveLength(1);
    expect(kube.pods({ namespace: NS })).toHaveLength(2);
  });

  it('lists every page of our Jobs and only ours', async () => {
    for (let i = 0; i < 5; i++) await cluster.createJob(agentJob(i % 2 ? 'linux' : 'mac', `d-${i}`, 1));
    kube.seedJob({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'someone-elses', namespace: NS, labels: { app: 'other' } },
      spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'x', image: 'busybox' }] } } },
    });
    kube.calls.length = 0;
    const jobs = await cluster.listAgentJobs();
    expect(jobs.map((j) => j.metadata?.name).sort()).toEqual(
      [0, 1, 2, 3, 4].map((i) => jobNameFor(i % 2 ? 'linux' : 'mac', `d-${i}`)).sort(),
    );
    // pageSize 2: three pages, each a list call with our selector.
    expect(kube.calls).toEqual(Array(3).fill({ verb: 'list', group: 'batch', resource: 'jobs', namespace: NS }));
    expect(jobs.every((j) => liveAgents(j) === 1)).toBe(true);
  });

  it('lists the pods of named Jobs only: a set-based selector per 100 Jobs, a phase, the first indexes', async () => {
    const names = Array.from({ length: 205 }, (_, i) => jobNameFor('linux', `p-${i}`));
    for (let i = 0; i < 205; i++) await cluster.createJob(agentJob('linux', `p-${i}`, i === 7 ? 8 : 1));
    const named = [names[7] ?? '', ...names.slice(100, 205)];
    kube.calls.length = 0;
    kube.lists.length = 0;
    const pods = await cluster.listAgentPods?.({ jobNames: [...named, names[7] ?? ''] });
    expect(pods?.map((p) => p.metadata?.labels?.['job-name'])).toHaveLength(8 + 105);
    expect(new Set(pods?.map((p) => p.metadata?.labels?.['job-name']))).toEqual(new Set(named));
    // 106 distinct Jobs: two selectors (100 + 6 names), each read in pages of 2 (pageSize).
    const selectors = [...new Set(kube.lists.map((l) => l.labelSelector))];
    expect(selectors).toHaveLength(2);
    expect(selectors.map((s) => /job-name in \(([^)]*)\)$/.exec(s ?? '')?.[1]?.split(',').length)).toEqual([100, 6]);
    expect(selectors.every((s) => s?.startsWith(`${AGENT_JOB_SELECTOR},job-name in (`))).toBe(true);
    expect(kube.lists.every((l) => l.resource === 'pods' && l.limit === 2 && l.items <= 2)).toBe(true);

    // The first 3 indexes of the 8-agent Job; its Failed pods only.
    const sample = await cluster.listAgentPods?.({ jobNames: [names[7] ?? ''], firstIndexes: 3 });
    expect(sample?.map((p) => p.metadata?.labels?.['batch.kubernetes.io/job-completion-index']).sort()).toEqual([
      '0',
      '1',
      '2',
    ]);
    const [victim] = kube.pods({ jobName: names[7] ?? '' });
    kube.failPod(victim?.metadata?.name ?? '', { namespace: NS });
    const failed = await cluster.listAgentPods?.({ jobNames: [names[7] ?? ''], phase: 'Failed' });
    expect(failed?.map((p) => p.metadata?.name)).toEqual([victim?.metadata?.name]);
    // No Job named: no call. Without a query: every pod of ours.
    kube.calls.length = 0;
    expect(await cluster.listAgentPods?.({ jobNames: [] })).toEqual([]);
    expect(kube.calls).toEqual([]);
    expect(await cluster.listAgentPods?.()).toHaveLength(205 + 7);
  });

  it('the fake API server reads set-based selectors as apimachinery does', async () => {
    await cluster.createJob(agentJob('linux', 's-1', 1));
    const list = (labelSelector: string) =>
      fetch(`${kube.url}/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(labelSelector)}`, {
        headers: { authorization: `Bearer ${kube.token}` },
      });
    const name = jobNameFor('linux', 's-1');
    const items = async (selector: string) => ((await (await list(selector)).json()) as { items: unknown[] }).items;
    expect(await items(`job-name in (${name})`)).toHaveLength(1);
    expect(await items(`job-name in (other, ${name} )`)).toHaveLength(1);
    expect(await items(`job-name notin (${name})`)).toHaveLength(0);
    expect(await items(`job-name in (${name}),batch.kubernetes.io/job-completion-index in (1,2)`)).toHaveLength(0);
    // `()` is the set of the empty value (apimachinery parseValues), matching no job-name.
    expect(await items('job-name in ()')).toHaveLength(0);
    const tooLong = await list(`job-name in (${'a'.repeat(64)})`);
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { message: string }).message).toMatch(/must be no more than 63 characters/);
  });

  it('reads Job status as the controller writes it (pending pods count as live agents)', async () => {
    await cluster.createJob(agentJob('linux', 'd-s', 2));
    let [job] = await cluster.listAgentJobs();
    expect(liveAgents(job!)).toBe(2);
    kube.succeedAll(jobNameFor('linux', 'd-s'));
    [job] = await cluster.listAgentJobs();
    expect(job!.status?.succeeded).toBe(2);
    expect(job!.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')).toBe(true);
    expect(liveAgents(job!)).toBe(0);
  });

  it('surfaces 500 and 429 as retryable errors, with Retry-After, and creates nothing', async () => {
    kube.failNext('POST', '/jobs', 500);
    const e1 = await cluster.createJob(agentJob('linux', 'd-f', 1)).catch((e) => e);
    expect(e1).toBeInstanceOf(RetryableKubeError);
    expect(e1).toMatchObject({ status: 500, reason: 'InternalError', retryable: true });

    kube.failNext('POST', '/jobs', 429, 1, { retryAfterSeconds: 7 });
    const e2 = await cluster.createJob(agentJob('linux', 'd-f', 1)).catch((e) => e);
    expect(e2).toBeInstanceOf(RetryableKubeError);
    expect(e2).toMatchObject({ status: 429, reason: 'TooManyRequests', retryAfterSeconds: 7 });
    expect(kube.jobs()).toHaveLength(0);

    kube.failNext('GET', '/jobs', 503);
    await expect(cluster.listAgentJobs()).rejects.toBeInstanceOf(RetryableKubeError);
    // And the next try works.
    expect(await cluster.createJob(agentJob('linux', 'd-f', 1))).toBe('created');
  });

  it('treats a timeout as retryable', async () => {
    const impatient = await createCluster({ kind: 'kubeconfig-file', path: kube.kubeconfigPath }, NS, {
      timeoutMs: 300,
    });
    kube.delay(10_000, { method: 'POST', count: 1 });
    const started = Date.now();
    const e = await impatient.createJob(agentJob('linux', 'd-t', 1)).catch((err) => err);
    expect(e).toBeInstanceOf(RetryableKubeError);
    expect(e.reason).toBe('Timeout');
    // It gave up on its own timeout, long before the server would have answered.
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('throws a non-retryable error for an invalid Job (422)', async () => {
    const bad = agentJob('linux', 'd-bad', 1);
    bad.metadata!.name = 'Not_A_DNS_Name';
    const e = await cluster.createJob(bad).catch((err) => err);
    expect(e).toBeInstanceOf(KubeApiError);
    expect(e).not.toBeInstanceOf(RetryableKubeError);
    expect(e).toMatchObject({ status: 422, reason: 'Invalid' });
  });

  it('restarts a list whose continue token expired (410)', async () => {
    for (let i = 0; i < 3; i++) await cluster.createJob(agentJob('linux', `d-e${i}`, 1));
    kube.failNext('GET', /continue=/, 410);
    expect(await cluster.listAgentJobs()).toHaveLength(3);
  });

  it('rejects a wrong token with 401 (not retryable)', async () => {
    const { writeFileSync, readFileSync } = await import('node:fs');
    const path = `${kube.kubeconfigPath}.bad`;
    writeFileSync(path, readFileSync(kube.kubeconfigPath, 'utf8').replace(kube.token, 'wrong'));
    const other = await createCluster({ kind: 'kubeconfig-file', path }, NS);
    const e = await other.listAgentJobs().catch((err) => err);
    expect(e).toBeInstanceOf(KubeApiError);
    expect(e.status).toBe(401);
  });

  it('uses our label selector', () => {
    expect(AGENT_JOB_SELECTOR).toBe('app.kubernetes.io/managed-by=ci-agent-autoscaler');
  });
});
