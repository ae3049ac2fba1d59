/**
 * The local stack (`npm start -- --cluster kwok`) on the REAL control plane of contract.test.ts:
 * signed webhooks in over HTTP, the scaler creates agent Jobs as its own identity, the Job
 * controller makes the pods, kwok runs them for a while and succeeds them (their fate), and the
 * simulated CI provider, reading the pods through the API as the plane's admin, gives each Running
 * agent a waiting CI job (started webhook) and sends `finished` when kwok has ended its pod.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Job } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { delivery, newCiJob, post } from '../../tools/local/ci-webhooks.js';
import { writeKwokAgentTemplate } from '../../tools/local/kwok-cluster.js';
import { startLocalStack } from '../../tools/local/stack.js';
import { type Backend, eventually } from './backends.js';

type Kwok = Backend & { plane: import('../../tools/k8s/control-plane.js').ControlPlane };

const complete = (j: V1Job) => (j.status?.conditions ?? []).some((c) => c.type === 'Complete' && c.status === 'True');

export function localStackOnRealPlane(real: () => Kwok): void {
  it('the local stack turns signed webhooks into kwok agents that take the CI jobs and complete', async () => {
    const b = real();
    const namespace = 'ci-kwok-local-stack';
    const kubeconfig = await b.prepare(namespace);
    const dir = mkdtempSync(join(tmpdir(), 'local-stack-kwok-'));
    const logs: string[] = [];
    const stack = await startLocalStack({
      port: 0,
      kubeconfig,
      simulatedCiKubeconfig: b.plane.adminKubeconfig,
      env: { KUBE_NAMESPACE: namespace, MAX_AGENTS: '5', JOB_TEMPLATE: writeKwokAgentTemplate(dir, 1500) },
      localDir: dir,
      onLog: (level, message) => logs.push(`${level} ${message}`),
    });
    try {
      expect(stack.status()).toMatchObject({ cluster: 'kubeconfig', simulatedCi: true });
      const jobs = [newCiJob('buildkite', 'default'), newCiJob('github', 'default'), newCiJob('gitlab', 'default')];
      for (const job of jobs) {
        const res = await post(stack.webhookUrl, delivery(job, 'scheduled', stack.secrets));
        expect(res.status, res.body).toBe(202);
      }
      // Each CI job is taken by a Running kwok pod (started) and finished once kwok succeeded it.
      const records = await eventually(() => {
        const mine = stack.status().ciJobs.filter((r) => jobs.some((j) => j.jobId === r.jobId));
        expect(mine).toHaveLength(3);
        for (const r of mine)
          expect(r).toMatchObject({ startedAt: expect.any(Number), finishedAt: expect.any(Number) });
        return mine;
      }, 60_000);
      const pods = new Set(records.map((r) => r.pod));
      expect(pods.size).toBe(3);
      // They are real pods of the scaler's Jobs, and every one of those Jobs completes.
      const listed = await b.pods(namespace);
      for (const pod of pods) expect(listed.map((p) => p.metadata?.name)).toContain(pod);
      await eventually(async () => {
        const all = await b.jobs(namespace);
        expect(all.reduce((n, j) => n + (j.spec?.parallelism ?? 0), 0)).toBe(3);
        expect(all.every(complete)).toBe(true);
      }, 30_000);
      // The scaler saw the started and finished events: nothing pending or running.
      await eventually(() => expect(stack.status().queues[0]).toMatchObject({ pending: 0, running: 0 }), 20_000);
      expect(stack.fakeGitlab?.lookups(jobs[2]!.jobId)).toBe(1);
      expect(logs.filter((l) => l.startsWith('error'))).toEqual([]);
    } finally {
      await stack.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
}
