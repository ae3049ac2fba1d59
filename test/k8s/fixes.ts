/**
 * The Kubernetes fixes of issue 18 (point 5) on a REAL control plane (tools/k8s/control-plane.ts:
 * kube-apiserver with TLS, RBAC and the admission plugins PodSecurity, ResourceQuota,
 * ServiceAccount and OwnerReferencesPermissionEnforcement; the Job controller; kwok nodes). The
 * scaler's adapter talks to it as its own identity, with the Role of infra/k8s/rbac.yaml. The
 * same behaviours are tested against tools/fakes/kube in test/integration.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { V1Job } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { createFailureReason, jobStatusView, QueueBackoff } from '../../functions/core/backoff.js';
import type { ClusterPort } from '../../functions/scaler/ports.js';
import { type Backend, eventually } from './backends.js';

type Kwok = Backend & { plane: import('../../tools/k8s/control-plane.js').ControlPlane };
let b: Kwok;

async function scaler(namespace: string): Promise<ClusterPort> {
  const kubeconfig = await b.prepare(namespace);
  return createCluster({ kind: 'kubeconfig-file', path: kubeconfig }, namespace);
}

async function agentJob(namespace: string, dispatchId: string, change: (job: V1Job) => void = () => {}) {
  const job = buildAgentJob(await loadTemplate('buildkite'), {
    namespace,
    queue: 'q',
    dispatchId,
    jobName: jobNameFor('q', dispatchId),
    count: 2,
    ttlSecondsAfterFinished: 600,
    activeDeadlineSeconds: 3600,
  });
  change(job);
  return job;
}

/**
 * Registered by contract.test.ts inside its real-control-plane suite, so the run starts one
 * control plane for both.
 */
export function fixesOnRealPlane(real: () => Kwok): void {
  beforeAll(() => {
    b = real();
  });
  fixes();
}

function fixes(): void {
  describe('the Kubernetes fixes on a real apiserver', () => {
    it('Strict field validation: a template typo is a 400 naming the field, nothing is created', async () => {
      const namespace = 'fix-strict';
      const cluster = await scaler(namespace);
      const job = await agentJob(namespace, 'typo', (j) => {
        Object.assign(j.spec!.template.spec!.containers[0]!, { imagePullPolice: 'Always' });
      });
      await expect(cluster.createJob(job)).rejects.toMatchObject({
        status: 400,
        reason: 'BadRequest',
        message: expect.stringContaining(
          'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolice"',
        ),
      });
      expect(await b.jobs(namespace)).toEqual([]);
    }, 120_000);

    it('the Secret before its Job, then owned by it under OwnerReferencesPermissionEnforcement; without delete on secrets it is refused', async () => {
      const namespace = 'fix-owner';
      const cluster = await scaler(namespace);
      const job = await agentJob(namespace, 'owner');
      const jobName = job.metadata?.name ?? '';
      expect(await cluster.createSecret!({ metadata: { name: `${jobName}-jit` }, data: { '0': 'eA==' } })).toBe(
        'created',
      );
      expect(await cluster.createJob(job)).toBe('created');
      await cluster.ownSecret!(`${jobName}-jit`, jobName);
      const [secret] = await b.secrets(namespace);
      expect(secret?.metadata?.ownerReferences?.[0]).toMatchObject({
        kind: 'Job',
        name: jobName,
        blockOwnerDeletion: false,
      });

      // The Role as it was (secrets: create only): the real admission plugin refuses the owner.
      const role = (await b.plane.request<Record<string, unknown>>(
        'GET',
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles/ci-agent-autoscaler`,
      )) as { rules: { resources: string[]; verbs: string[] }[] };
      const old = role.rules.map((r) => (r.resources.includes('secrets') ? { ...r, verbs: ['create', 'patch'] } : r));
      await b.plane.request(
        'PUT',
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles/ci-agent-autoscaler`,
        {
          ...role,
          rules: old,
        },
      );
      await cluster.createSecret!({ metadata: { name: `${jobName}-jit-1` }, data: { '1': 'eA==' } });
      await eventually(
        () =>
          expect(cluster.ownSecret!(`${jobName}-jit-1`, jobName)).rejects.toMatchObject({
            status: 403,
            message: expect.stringMatching(/cannot set an ownerRef on a resource you can't delete/),
          }),
        10_000,
      );
    }, 120_000);

    it.each([
      ['ResourceQuota', 'fix-quota'],
      ['ServiceAccountMissing', 'fix-sa'],
      ['PodSecurity', 'fix-psa'],
    ])(
      'pods refused by admission (%s): only FailedCreate Events, read by listCreateFailures with the reason',
      async (reason, namespace) => {
        const cluster = await scaler(namespace);
        if (reason === 'ResourceQuota')
          await b.plane.apply([
            {
              apiVersion: 'v1',
              kind: 'ResourceQuota',
              metadata: { name: 'agents', namespace },
              spec: { hard: { pods: '0' } },
            },
          ]);
        const job = await agentJob(namespace, `refused-${reason.toLowerCase()}`, (j) => {
          const spec = j.spec!.template.spec!;
          if (reason === 'ServiceAccountMissing') spec.serviceAccountName = 'no-such-account';
          if (reason === 'PodSecurity') spec.hostNetwork = true; // baseline forbids host namespaces
        });
        const jobName = job.metadata?.name ?? '';
        expect(await cluster.createJob(job)).toBe('created');
        const failures = await eventually(async () => {
          const f = await cluster.listCreateFailures!([jobName]);
          expect(f).toHaveLength(1);
          return f;
        }, 30_000);
        console.log(`${reason}: ${failures[0]?.message}`);
        expect(createFailureReason(failures[0]?.message ?? '')).toBe(reason);
        const [listed] = (await b.jobs(namespace)).filter((j) => j.metadata?.name === jobName);
        expect(listed?.status?.active ?? 0).toBe(0);
        expect(listed?.status?.failed ?? 0).toBe(0);
        expect(listed?.status?.conditions ?? []).toEqual([]);
        expect(await b.pods(namespace, jobName)).toEqual([]);
        // The scaler deletes such a Job (its Role allows it).
        await cluster.deleteJob!(jobName);
        await eventually(async () =>
          expect((await b.jobs(namespace)).map((j) => j.metadata?.name)).not.toContain(jobName),
        );
      },
      120_000,
    );

    it('a Job past activeDeadlineSeconds: FailureTarget/Failed DeadlineExceeded, its pods counted failed, and no start failure', async () => {
      const namespace = 'fix-deadline';
      const cluster = await scaler(namespace);
      const job = await agentJob(namespace, 'deadline', (j) => {
        j.spec!.activeDeadlineSeconds = 5;
        j.spec!.template.metadata!.annotations = {
          ...j.spec!.template.metadata!.annotations,
          'ci-autoscaler.test/fate': 'run',
        };
      });
      const jobName = job.metadata?.name ?? '';
      expect(await cluster.createJob(job)).toBe('created');
      const ended = await eventually(async () => {
        const [j] = (await cluster.listAgentJobs()).filter((x) => x.metadata?.name === jobName);
        const view = j ? jobStatusView(j) : undefined;
        expect(view?.deadlineAt).toBeDefined();
        expect(view?.failed).toBe(2);
        return { job: j, view };
      }, 60_000);
      console.log(`deadline: status ${JSON.stringify(ended.job?.status)}`);
      const pods = await cluster.listAgentPods!({ jobNames: [jobName] });
      const backoff = new QueueBackoff({ baseMs: 30_000, maxMs: 600_000, unschedulableMs: 300_000 });
      const events = backoff.observe(pods, Date.now(), {
        jobs: [ended.view!],
        failed: new Set([jobName]),
        sample: new Set(),
      });
      expect(events).toEqual([]);
    }, 120_000);

    it('one keep-alive TLS connection pool per cluster: no new connection after the first round of calls', async () => {
      const namespace = 'fix-tls';
      const cluster = await scaler(namespace);
      let connected = 0;
      const count = () => void connected++;
      subscribe('undici:client:connected', count);
      try {
        const rounds: number[] = [];
        for (let t = 0; t < 3; t++) {
          const before = connected;
          await cluster.listAgentJobs();
          await cluster.listAgentPods!();
          await cluster.listCreateFailures!(['none']);
          rounds.push(connected - before);
        }
        console.log(`TLS connections per round of 3 calls to the real apiserver: ${rounds.join(', ')}`);
        expect(rounds[0]).toBeGreaterThanOrEqual(1);
        expect(rounds.slice(1)).toEqual([0, 0]);
      } finally {
        unsubscribe('undici:client:connected', count);
      }
    }, 120_000);
  });
}
