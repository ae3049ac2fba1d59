/**
 * The scaler's RBAC Role against the Kubernetes calls it really makes: the real Kubernetes
 * adapter (functions/adapters/kubernetes) drives every scaler operation against the fake API
 * server, which records each request as RBAC names it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { FakeKube } from '../../functions/local/fake-kube/index.js';
import type { ClusterPort } from '../../functions/scaler/ports.js';
import { assertRbacCovers, compareRbac, grants, type RbacCall, scalerRole } from './rbac.js';

const NAMESPACE = 'ci-agents';
let fake: FakeKube;
let cluster: ClusterPort;

beforeAll(async () => {
  fake = await new FakeKube({ namespace: NAMESPACE }).start();
  cluster = await createCluster({ kind: 'kubeconfig-file', path: fake.kubeconfigPath }, NAMESPACE);
});

afterAll(async () => {
  await fake?.stop();
});

async function agentJob(dispatchId: string) {
  return buildAgentJob(await loadTemplate('buildkite'), {
    namespace: NAMESPACE,
    queue: 'default',
    dispatchId,
    jobName: jobNameFor('default', dispatchId),
    count: 3,
    ttlSecondsAfterFinished: 600,
    activeDeadlineSeconds: 7200,
  });
}

describe('RBAC Role == the calls the scaler makes', () => {
  it("every scaler operation (list, create, retried create 409, pods, the Job's Secret) is allowed, and every grant is used", async () => {
    fake.reset();
    expect(await cluster.listAgentJobs()).toEqual([]);
    const job = await agentJob('rbac-1');
    expect(await cluster.createJob(job)).toBe('created');
    expect(await cluster.createJob(job)).toBe('exists');
    expect((await cluster.listAgentJobs()).map((j) => j.metadata?.name)).toEqual([job.metadata!.name]);
    expect(await cluster.listAgentPods!()).toHaveLength(3);
    const secret = { metadata: { name: `${job.metadata!.name}-jit` }, data: { '0': 'eA==' } };
    expect(await cluster.createJobSecret!(job.metadata!.name!, secret)).toBe('created');
    expect(await cluster.createJobSecret!(job.metadata!.name!, secret)).toBe('exists');

    expect(new Set(fake.calls.map((c) => `${c.verb} ${c.group}/${c.resource}`))).toEqual(
      new Set(['list batch/jobs', 'create batch/jobs', 'list /pods', 'create /secrets']),
    );
    expect(() => assertRbacCovers(fake.calls, { exhaustive: true })).not.toThrow();
  });

  it('paginated listing stays within the Role', async () => {
    fake.reset();
    const paged = await createCluster({ kind: 'kubeconfig-file', path: fake.kubeconfigPath }, NAMESPACE, {
      pageSize: 2,
    });
    for (let i = 0; i < 5; i++) await paged.createJob(await agentJob(`page-${i}`));
    expect(await paged.listAgentJobs()).toHaveLength(5);
    expect(fake.calls.filter((c) => c.verb === 'list').length).toBe(3);
    assertRbacCovers(fake.calls);
  });

  it('the Role is namespaced and grants only Jobs create/list, pods list and secrets create (never read)', () => {
    const role = scalerRole();
    expect(role.namespace).toBe(NAMESPACE);
    expect(grants(role)).toEqual(['batch/jobs:create', 'batch/jobs:list', 'core/pods:list', 'core/secrets:create']);
  });

  it('the check fails on a call the Role forbids, a cluster-wide call, or an unused grant', () => {
    const inNs = (c: Omit<RbacCall, 'namespace'>): RbacCall => ({ ...c, namespace: NAMESPACE });
    const list = inNs({ verb: 'list', group: 'batch', resource: 'jobs' });
    const create = inNs({ verb: 'create', group: 'batch', resource: 'jobs' });
    const del = inNs({ verb: 'delete', group: 'batch', resource: 'jobs', name: 'x' });
    const pods = inNs({ verb: 'list', group: '', resource: 'pods' });
    const secret = inNs({ verb: 'create', group: '', resource: 'secrets' });
    expect(() => assertRbacCovers([list, create, pods, secret], { exhaustive: true })).not.toThrow();
    expect(() => assertRbacCovers([list, create, pods], { exhaustive: true })).toThrow(
      /never used: core\/secrets:create/,
    );
    expect(() => assertRbacCovers([list, create, del])).toThrow(/forbids.*delete batch\/jobs/);
    expect(() =>
      assertRbacCovers([list, inNs({ verb: 'get', group: '', resource: 'secrets', name: 'buildkite-agent-token' })]),
    ).toThrow(/forbids.*get core\/secrets/);
    expect(() =>
      assertRbacCovers([
        list,
        inNs({ verb: 'patch', group: 'batch', resource: 'jobs', subresource: 'status', name: 'x' }),
      ]),
    ).toThrow(/jobs\/status/);
    expect(() => assertRbacCovers([{ verb: 'list', group: 'batch', resource: 'jobs' }])).toThrow(/cluster-wide/);
    expect(compareRbac([{ ...list, namespace: 'default' }]).forbidden).toHaveLength(1);
    expect(() => assertRbacCovers([list], { exhaustive: true })).toThrow(/never used: batch\/jobs:create/);
    expect(() => assertRbacCovers([])).toThrow(/no calls/);
  });
});
