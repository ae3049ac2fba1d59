/**
 * An agent's stop (functions/scaler/scale-down.ts) on the fake and the real control plane: the
 * scaler's adapter deletes one agent pod of a Job as it does for a warm pool's surplus
 * (ClusterPort.deletePod: a grace period and a uid precondition), and the Job controller reads
 * it as our Jobs are built for (core/agent-job.ts: Indexed, podReplacementPolicy Failed, a
 * podFailurePolicy): no replacement while the pod terminates (job_controller.go manageJob,
 * indexed_job_utils.go firstPendingIndexes), one completion once it ends Succeeded.
 *
 * The test plays the agent and the kubelet: the agent handles SIGTERM and goes on (its pod
 * stays Running, being deleted: Backend.holdOnDelete), then exits 0 and the kubelet reports the
 * pod Succeeded (Backend.endPod; pkg/kubelet/kubelet_pods.go getPhase: a pod being deleted whose
 * containers all exited 0 is Succeeded).
 */
import { randomUUID } from 'node:crypto';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import type { ClusterPort } from '../../functions/scaler/ports.js';
import { type Backend, eventually } from './backends.js';

/** The grace period the scaler gives a stop: the Job's activeDeadlineSeconds. */
const DEADLINE_SECONDS = 3600;

const isReady = (p: V1Pod) =>
  p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const indexOf = (p: V1Pod | undefined) => p?.metadata?.labels?.['batch.kubernetes.io/job-completion-index'];

export function agentStops(backend: () => Backend, name: string): void {
  describe(`an agent stopped by a graceful pod delete (${name})`, () => {
    let n = 0;
    const setup = async () => {
      const b = backend();
      n++;
      const namespace = `ci-stop-${b.name}-${n}`;
      const kubeconfig = await b.prepare(namespace);
      const cluster: ClusterPort = await createCluster({ kind: 'kubeconfig-file', path: kubeconfig }, namespace);
      const job = buildAgentJob(await loadTemplate('buildkite'), {
        namespace,
        queue: 'default',
        dispatchId: `stop-${n}`,
        jobName: jobNameFor('default', `stop-${n}`),
        count: 3,
        ttlSecondsAfterFinished: 600,
        activeDeadlineSeconds: DEADLINE_SECONDS,
      });
      expect(await cluster.createJob(job)).toBe('created');
      const jobName = job.metadata?.name ?? '';
      await b.setFate(namespace, jobName, 'run');
      const settle = Math.max(b.settleMs, 1000);
      const pods = await eventually(async () => {
        const all = await b.pods(namespace, jobName);
        expect(all.filter(isReady)).toHaveLength(3);
        return all;
      }, settle);
      // Every pod name seen: the Job never makes a 4th.
      const seen = new Set(pods.map((p) => p.metadata?.name));
      const look = async () => {
        const now = await b.pods(namespace, jobName);
        for (const p of now) seen.add(p.metadata?.name);
        return now;
      };
      const status = async () => {
        const [j] = (await b.jobs(namespace)).filter((x: V1Job) => x.metadata?.name === jobName);
        return j?.status ?? {};
      };
      return { b, namespace, kubeconfig, cluster, jobName, pods, settle, seen, look, status };
    };

    it('no replacement while it terminates; it ends Succeeded, counts one completion, and the Job completes with the other two', async () => {
      const { b, namespace, cluster, jobName, pods, settle, seen, look, status } = await setup();
      const [victim] = pods;
      const ref = { name: victim?.metadata?.name ?? '', uid: victim?.metadata?.uid ?? '' };
      await b.holdOnDelete(namespace, ref.name);

      expect(await cluster.deletePod!(ref, DEADLINE_SECONDS)).toBe('deleted');
      const deleting = (await look()).find((p) => p.metadata?.name === ref.name);
      expect(deleting?.metadata?.deletionGracePeriodSeconds).toBe(DEADLINE_SECONDS);
      const due = new Date(deleting?.metadata?.deletionTimestamp ?? 0).getTime() - Date.now();
      expect(due).toBeGreaterThan((DEADLINE_SECONDS - 60) * 1000);
      expect(deleting?.status?.phase).toBe('Running');
      // The Job controller counts it terminating, not active, and makes no pod for its index.
      await eventually(async () => {
        expect(await status()).toMatchObject({ active: 2, terminating: 1 });
      }, settle);
      if (b.settleMs > 0) await new Promise((r) => setTimeout(r, 3000));
      expect((await look()).map((p) => p.metadata?.name).sort()).toEqual(pods.map((p) => p.metadata?.name).sort());
      expect(await status()).toMatchObject({ active: 2, terminating: 1 });
      expect((await status()).succeeded ?? 0).toBe(0);

      // The agent exits 0: its index succeeded, the pod goes, nothing replaces it.
      await b.endPod(namespace, ref.name, 'Succeeded');
      await eventually(async () => {
        const s = await status();
        expect(s.succeeded).toBe(1);
        expect(s.completedIndexes).toBe(indexOf(victim));
        expect(s.terminating ?? 0).toBe(0);
        expect(s.active).toBe(2);
        expect((await look()).map((p) => p.metadata?.name)).not.toContain(ref.name);
      }, settle);
      // Gone: nothing to stop.
      expect(await cluster.deletePod!(ref, DEADLINE_SECONDS)).toBe('gone');

      // The other two agents take CI jobs and exit 0: the Job completes with 3 completions.
      await b.setFate(namespace, jobName, 'succeed');
      await eventually(async () => {
        const s = await status();
        expect(s.conditions?.find((c) => c.type === 'Complete')?.status).toBe('True');
        expect(s.succeeded).toBe(3);
        expect(s.failed ?? 0).toBe(0);
      }, settle);
      await look();
      expect([...seen].sort()).toEqual(pods.map((p) => p.metadata?.name).sort());
    }, 120_000);

    it('a delete whose uid precondition is stale is 409 Conflict and deletes nothing', async () => {
      const { b, namespace, kubeconfig, cluster, pods, look } = await setup();
      const [pod] = pods;
      const name = pod?.metadata?.name ?? '';
      const stale = randomUUID();
      expect(await cluster.deletePod!({ name, uid: stale }, DEADLINE_SECONDS)).toBe('gone');
      // The server's own answer, as the scaler's identity.
      const { KubeConfig, CoreV1Api } = await import('@kubernetes/client-node');
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfig);
      const core = kc.makeApiClient(CoreV1Api);
      const refused = await core.deleteNamespacedPod({ name, namespace, body: { preconditions: { uid: stale } } }).then(
        () => undefined,
        (e: { code?: number; body?: string }) => e,
      );
      expect(refused?.code).toBe(409);
      expect(JSON.parse(refused?.body ?? '{}')).toMatchObject({
        reason: 'Conflict',
        code: 409,
        message: `Operation cannot be fulfilled on Pod "${name}": the UID in the precondition (${stale}) does not match the UID in record (${pod?.metadata?.uid}). The object might have been deleted and then recreated`,
      });
      if (b.settleMs > 0) await new Promise((r) => setTimeout(r, 1000));
      const after = await look();
      expect(after.filter(isReady)).toHaveLength(3);
      expect(after.filter((p) => p.metadata?.deletionTimestamp)).toEqual([]);
    }, 60_000);
  });
}
