/**
 * The local stack (`npm start`) end to end: DynamoDB Local, fauxqs, the webhook over HTTP, the
 * scaler loop and the embedded simulated cluster. Signed webhooks of the three providers go in
 * over HTTP; agent Jobs appear in the cluster, their pods run, the simulated CI provider reports
 * the CI jobs started and finished, and the Jobs complete. stop() leaves no child process and no
 * run files.
 */
import { existsSync } from 'node:fs';
import type { V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delivery, newCiJob, post } from '../../tools/local/ci-webhooks.js';
import { runCacheDemo } from '../../tools/local/demo.js';
import { type LocalStack, startLocalStack } from '../../tools/local/stack.js';

let stack: LocalStack;
const logs: string[] = [];

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const complete = (j: V1Job) => (j.status?.conditions ?? []).some((c) => c.type === 'Complete' && c.status === 'True');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  stack = await startLocalStack({
    port: 0,
    env: { MAX_AGENTS: '5' },
    agentStartMs: 300,
    agentRunMs: 700,
    onLog: (level, message) => logs.push(`${level} ${message}`),
  });
});

afterAll(async () => {
  await stack?.stop();
});

describe('local stack', () => {
  it('serves on 127.0.0.1 with the embedded cluster and the production config loaders', () => {
    expect(stack.webhookUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stack.fakeCluster).toBeDefined();
    expect(stack.scalerConfig.queueSettings.default).toMatchObject({ minAgents: 0, maxAgents: 5 });
    expect(stack.childPids).toHaveLength(1);
    expect(alive(stack.childPids[0]!)).toBe(true);
  });

  it('guards the webhooks with secrets of its own, never ones published in this repository', () => {
    const { buildkite, github, gitlab } = stack.secrets;
    for (const s of [buildkite, github, gitlab]) expect(s).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(new Set([buildkite, github, gitlab]).size).toBe(3);
    expect(stack.webhookConfig.secrets).toEqual({
      buildkite: { kind: 'value', value: buildkite },
      github: { kind: 'value', value: github },
      gitlab: { kind: 'value', value: gitlab },
    });
  });

  it('rejects an unsigned webhook with 401 and provisions nothing for it', async () => {
    const d = delivery(newCiJob('buildkite', 'default'), 'scheduled', { ...stack.secrets, buildkite: 'wrong-secret' });
    const res = await post(stack.webhookUrl, d);
    expect(res.status).toBe(401);
    await new Promise((r) => setTimeout(r, 1500)); // more than a scaler tick
    expect(stack.fakeCluster!.jobs()).toHaveLength(0);
  });

  it('hands the function the exact body bytes, as text or base64 (as API Gateway does), so signatures verify', async () => {
    for (const type of ['application/json; charset=utf-8', 'application/octet-stream']) {
      const job = { ...newCiJob('buildkite', 'other-queue'), name: 'tëst ✓ 🚀' };
      const d = delivery(job, 'scheduled', stack.secrets);
      const res = await post(stack.webhookUrl, { ...d, headers: { ...d.headers, 'content-type': type } });
      // Authentic and parsed (the queue is not served here, so it is acknowledged and ignored).
      expect(res.status, `${type}: ${res.body}`).toBe(202);
      expect(JSON.parse(res.body)).toMatchObject({ status: 'ignored' });
    }
    const tampered = delivery(newCiJob('github', 'default'), 'scheduled', stack.secrets);
    const res = await post(stack.webhookUrl, { ...tampered, body: tampered.body.replace('"queued"', '"queued" ') });
    expect(res.status).toBe(401);
  });

  it('turns signed webhooks into agent Jobs whose agents run the CI jobs and complete', async () => {
    const jobs = [newCiJob('buildkite', 'default'), newCiJob('github', 'default'), newCiJob('gitlab', 'default')];
    for (const job of jobs) {
      const res = await post(stack.webhookUrl, delivery(job, 'scheduled', stack.secrets));
      expect(res.status, res.body).toBe(202);
    }
    const kube = stack.fakeCluster!;
    // Agent Jobs appear, labelled as ours, one agent per CI job in total.
    const created = await until('agent Jobs for 3 agents', () => {
      const all = kube.jobs(stack.scalerConfig.namespace);
      return all.reduce((n, j) => n + (j.spec?.parallelism ?? 0), 0) >= 3 && all;
    });
    for (const j of created) expect(j.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('ci-agent-autoscaler');

    // Each CI job is taken by an agent (started webhook) and finished; every Job completes.
    const records = await until('3 CI jobs finished', () => {
      const mine = stack.status().ciJobs.filter((r) => jobs.some((j) => j.jobId === r.jobId));
      return mine.length === 3 && mine.every((r) => r.startedAt !== undefined && r.finishedAt !== undefined) && mine;
    });
    expect(new Set(records.map((r) => r.pod)).size).toBe(3);
    await until('every agent Job Complete', () => kube.jobs(stack.scalerConfig.namespace).every(complete));

    // The scaler saw the finished events: nothing pending or running, nothing more provisioned.
    await until('ledger drained', () => {
      const q = stack.status().queues[0]!;
      return q.pending === 0 && q.running === 0;
    });
    const q = stack.status().queues[0]!;
    expect(q.agentsRequested).toBe(3);
    expect(q.maxInFlight).toBeLessThanOrEqual(5);
    // The GitLab job's tags came from the (fake) GitLab API, once for its three events.
    const gitlabJob = jobs[2]!;
    expect(stack.fakeGitlab?.lookups(gitlabJob.jobId)).toBe(1);
    expect(logs.filter((l) => l.startsWith('error'))).toEqual([]);
  });

  it('serves the cache API beside the webhooks (S3 in fauxqs, a local token issuer): miss, save, hit', async () => {
    const lines: string[] = [];
    const tokenFile = stack.status().cacheTokenFile!;
    expect(existsSync(tokenFile)).toBe(true);
    const ok = await runCacheDemo({ url: stack.cache.url, tokenFile, print: (l) => lines.push(l) });
    expect(ok, lines.join('\n')).toBe(true);
    expect(lines.join('\n')).toMatch(/miss demo-npm-[\s\S]*saved demo-npm-[\s\S]*hit demo-npm-\S+ \(exact\)/);
    // Without a token the cache answers 401, and the webhooks still answer as before.
    const res = await fetch(`${stack.cache.url}/cache/restore`, { method: 'POST', body: '{"key":"k"}' });
    expect(res.status).toBe(401);
  });

  it('stop() ends DynamoDB Local and removes the run files', async () => {
    const pid = stack.childPids[0]!;
    const kubeconfig = stack.kubeconfigPath;
    expect(existsSync(kubeconfig)).toBe(true);
    await stack.stop();
    expect(alive(pid)).toBe(false);
    expect(existsSync(kubeconfig)).toBe(false);
    await expect(
      post(stack.webhookUrl, delivery(newCiJob('gitlab', 'default'), 'scheduled', stack.secrets), 1000),
    ).rejects.toThrow();
  });
});
