/**
 * The scaler's RBAC Role against the Kubernetes calls it really makes: the real Kubernetes
 * adapter (functions/adapters/kubernetes) drives every scaler operation against the fake API
 * server, which records each request as RBAC names it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import type { ClusterPort } from '../../functions/scaler/ports.js';
import { FakeKube } from '../../tools/fakes/kube/index.js';
import { allows, assertRbacCovers, compareRbac, grants, type RbacCall, roleWithout, scalerRole } from './rbac.js';

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
  it("every scaler operation (list, create, retried create 409, pods, an agent's stop, Events, the Job's Secrets, deletes) is allowed, and every grant is used", async () => {
    fake.reset();
    expect(await cluster.listAgentJobs()).toEqual([]);
    const job = await agentJob('rbac-1');
    const jobName = job.metadata?.name ?? '';
    // GitHub queues: the Secret before its Job, then the Job as its owner.
    const secret = { metadata: { name: `${jobName}-jit` }, data: { '0': 'eA==' } };
    expect(await cluster.createSecret!(secret)).toBe('created');
    expect(await cluster.createSecret!(secret)).toBe('exists');
    expect(await cluster.createJob(job)).toBe('created');
    expect(await cluster.createJob(job)).toBe('exists');
    await cluster.ownSecret!(`${jobName}-jit`, jobName);
    // A Job whose Secret went missing gets one owned at once.
    expect(await cluster.createJobSecret!(jobName, { metadata: { name: `${jobName}-jit-1` }, data: {} })).toBe(
      'created',
    );
    expect((await cluster.listAgentJobs()).map((j) => j.metadata?.name)).toEqual([jobName]);
    const pods = await cluster.listAgentPods!();
    expect(pods).toHaveLength(3);
    // A surplus idle agent stopped (warm pool scale-down); a pod gone meanwhile is nothing to stop.
    const [pod] = pods;
    const ref = { name: pod?.metadata?.name ?? '', uid: pod?.metadata?.uid ?? '' };
    expect(await cluster.deletePod!(ref, 7200)).toBe('deleted');
    expect(await cluster.deletePod!({ ...ref, uid: 'another-pod' }, 7200)).toBe('gone');
    // A Job whose pods the server refuses: its Events are read, the Job deleted.
    expect(await cluster.listCreateFailures!([jobName])).toEqual([]);
    await cluster.deleteJob!(jobName);
    await cluster.deleteJob!(jobName);
    // The Secrets of a Job create the server refused are deleted.
    await cluster.createSecret!({ metadata: { name: 'orphan-jit' }, data: {} });
    await cluster.deleteSecret!('orphan-jit');
    await cluster.deleteSecret!('orphan-jit');

    expect(new Set(fake.calls.map((c) => `${c.verb} ${c.group}/${c.resource}`))).toEqual(
      new Set([
        'list batch/jobs',
        'create batch/jobs',
        'delete batch/jobs',
        'list /pods',
        'delete /pods',
        'list /events',
        'create /secrets',
        'patch /secrets',
        'delete /secrets',
      ]),
    );
    expect(() => assertRbacCovers(fake.calls, { exhaustive: true })).not.toThrow();
  });

  it("OwnerReferencesPermissionEnforcement: the Role lets the scaler set a Secret's owner; without delete on secrets the server refuses it", async () => {
    const enforcing = async (role: ReturnType<typeof scalerRole>) => {
      const server = await new FakeKube({ namespace: NAMESPACE, authorize: (c) => allows(role, c) }).start();
      const c = await createCluster({ kind: 'kubeconfig-file', path: server.kubeconfigPath }, NAMESPACE);
      return { server, c };
    };
    const job = await agentJob('owner-1');
    const jobName = job.metadata?.name ?? '';
    const ok = await enforcing(scalerRole());
    try {
      await ok.c.createSecret!({ metadata: { name: `${jobName}-jit` }, data: {} });
      await ok.c.createJob(job);
      await ok.c.ownSecret!(`${jobName}-jit`, jobName);
      expect(await ok.c.createJobSecret!(jobName, { metadata: { name: `${jobName}-jit-1` }, data: {} })).toBe(
        'created',
      );
      expect(ok.server.secrets(NAMESPACE).map((x) => x.metadata.ownerReferences?.[0]?.name)).toEqual([
        jobName,
        jobName,
      ]);
    } finally {
      await ok.server.stop();
    }
    // The Role as it was (secrets: create only): the ownerReference is refused.
    const old = await enforcing(roleWithout(scalerRole(), ['core/secrets:delete']));
    try {
      await old.c.createSecret!({ metadata: { name: `${jobName}-jit` }, data: {} });
      await old.c.createJob(job);
      await expect(old.c.ownSecret!(`${jobName}-jit`, jobName)).rejects.toMatchObject({
        status: 403,
        message: expect.stringMatching(/cannot set an ownerRef on a resource you can't delete/),
      });
      await expect(
        old.c.createJobSecret!(jobName, { metadata: { name: `${jobName}-jit-1` }, data: {} }),
      ).rejects.toMatchObject({ status: 403 });
    } finally {
      await old.server.stop();
    }
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

  it('the Role is namespaced and grants only Jobs create/list/delete, pods list/delete, Events list, secrets create/patch/delete (never read)', () => {
    const role = scalerRole();
    expect(role.namespace).toBe(NAMESPACE);
    expect(grants(role)).toEqual([
      'batch/jobs:create',
      'batch/jobs:delete',
      'batch/jobs:list',
      'core/events:list',
      'core/pods:delete',
      'core/pods:list',
      'core/secrets:create',
      'core/secrets:delete',
      'core/secrets:patch',
    ]);
  });

  it('the check fails on a call the Role forbids, a cluster-wide call, or an unused grant', () => {
    const inNs = (c: Omit<RbacCall, 'namespace'>): RbacCall => ({ ...c, namespace: NAMESPACE });
    const list = inNs({ verb: 'list', group: 'batch', resource: 'jobs' });
    const create = inNs({ verb: 'create', group: 'batch', resource: 'jobs' });
    const del = inNs({ verb: 'delete', group: 'batch', resource: 'jobs', name: 'x' });
    const pods = inNs({ verb: 'list', group: '', resource: 'pods' });
    const stop = inNs({ verb: 'delete', group: '', resource: 'pods', name: 'x' });
    const events = inNs({ verb: 'list', group: '', resource: 'events' });
    const secret = inNs({ verb: 'create', group: '', resource: 'secrets' });
    const own = inNs({ verb: 'patch', group: '', resource: 'secrets', name: 'x-jit' });
    const unsecret = inNs({ verb: 'delete', group: '', resource: 'secrets', name: 'x-jit' });
    const all = [list, create, del, pods, stop, events, secret, own, unsecret];
    expect(() => assertRbacCovers(all, { exhaustive: true })).not.toThrow();
    expect(() =>
      assertRbacCovers([list, create, del, pods, stop, events, own, unsecret], { exhaustive: true }),
    ).toThrow(/never used: core\/secrets:create/);
    expect(() =>
      assertRbacCovers([list, create, del], { role: roleWithout(scalerRole(), ['batch/jobs:delete']) }),
    ).toThrow(/forbids.*delete batch\/jobs/);
    expect(() => assertRbacCovers([list, inNs({ verb: 'deletecollection', group: '', resource: 'pods' })])).toThrow(
      /forbids.*deletecollection core\/pods/,
    );
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
