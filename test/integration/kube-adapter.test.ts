import type { V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Cluster, createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { KubeApiError, RetryableKubeError } from '../../functions/adapters/kubernetes/errors.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { AGENT_JOB_SELECTOR, buildAgentJob, jobNameFor, liveAgents } from '../../functions/core/agent-job.js';
import { type FakeKube, startFakeKube } from '../../functions/local/fake-kube/index.js';

const NS = 'ci-agents';
let kube: FakeKube;
let cluster: Cluster;
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
    timeoutMs: 300,
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
    kube.delay(1000, { method: 'POST', count: 1 });
    const started = Date.now();
    const e = await cluster.createJob(agentJob('linux', 'd-t', 1)).catch((err) => err);
    expect(e).toBeInstanceOf(RetryableKubeError);
    expect(e.reason).toBe('Timeout');
    expect(Date.now() - started).toBeLessThan(900);
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
