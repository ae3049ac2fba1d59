/**
 * The Secrets of GitHub just-in-time runners against the 1 MiB a Secret holds (corev1.MaxSecretSize,
 * which the fake API server enforces as pkg/apis/core/validation ValidateSecret does): a batch
 * whose configurations exceed it is split over several Secrets, all projected into the one
 * `jitconfig` volume; each is made before the Job and owned by it after.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  JitRunners,
  jitSecretName,
  SECRET_DATA_LIMIT,
  splitJitData,
} from '../../functions/adapters/github/jit-runners.js';
import type { RunnersApi } from '../../functions/adapters/github/runners-api.js';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import type { DispatchRecord } from '../../functions/core/stores.js';
import type { ClusterPort } from '../../functions/scaler/ports.js';
import { FakeKube, MAX_SECRET_SIZE } from '../../tools/fakes/kube/index.js';

const NAMESPACE = 'ci-agents';
let kube: FakeKube;
let cluster: ClusterPort;

beforeAll(async () => {
  kube = await new FakeKube({ namespace: NAMESPACE }).start();
  cluster = await createCluster({ kind: 'kubeconfig-file', path: kube.kubeconfigPath }, NAMESPACE);
});

afterAll(async () => {
  await kube?.stop();
});

/** A GitHub whose configurations are `size` bytes each. */
function bigRunners(size: number): RunnersApi {
  let id = 0;
  return {
    requests: 0,
    generateJitConfig: async ({ name }) => ({ runnerId: ++id, name, encodedJitConfig: 'x'.repeat(size) }),
    listRunners: async () => [],
    deleteRunner: async () => {},
  };
}

const quiet = () => {};
const log = { debug: quiet, info: quiet, warn: quiet, error: quiet };

describe('JIT Secrets and the 1 MiB a Secret holds', () => {
  it('the fake API server refuses a Secret over 1 MiB, as the real one does', async () => {
    const big = Buffer.alloc(MAX_SECRET_SIZE + 1).toString('base64');
    await expect(cluster.createSecret!({ metadata: { name: 'too-big' }, data: { '0': big } })).rejects.toMatchObject({
      status: 422,
      message: expect.stringMatching(/data: Too long/),
    });
    const full = Buffer.alloc(MAX_SECRET_SIZE).toString('base64');
    expect(await cluster.createSecret!({ metadata: { name: 'just-fits' }, data: { '0': full } })).toBe('created');
  });

  it('splits configurations over as few Secrets as fit, in index order; one config too big is an error', () => {
    const parts = splitJitData(['a'.repeat(400_000), 'b'.repeat(400_000), 'c'.repeat(400_000), 'd'], SECRET_DATA_LIMIT);
    expect(parts.map((p) => Object.keys(p))).toEqual([
      ['0', '1'],
      ['2', '3'],
    ]);
    expect(splitJitData(['x', 'y']).map((p) => Object.keys(p))).toEqual([['0', '1']]);
    expect(() => splitJitData(['z'.repeat(SECRET_DATA_LIMIT)])).toThrow(/over a Secret's/);
  });

  it('a batch of 8 agents with 300 KB configurations: 3 Secrets made before the Job, projected into its volume, owned by it', async () => {
    kube.reset();
    const runners = new JitRunners({
      api: bigRunners(300_000),
      cluster,
      runnerGroupId: 1,
      isJitQueue: () => true,
      deployment: 'split-test',
      log,
    });
    const dispatchId = 'split-1';
    const jobName = jobNameFor('gh', dispatchId);
    const dispatch: DispatchRecord = {
      queue: 'gh',
      dispatchId,
      jobName,
      count: 8,
      tokens: 8,
      status: 'intent',
      createdAt: Date.now(),
      leaseUntil: Date.now() + 60_000,
    };
    const template = buildAgentJob(await loadTemplate('github'), {
      namespace: NAMESPACE,
      queue: 'gh',
      dispatchId,
      jobName,
      count: 8,
      ttlSecondsAfterFinished: 600,
      activeDeadlineSeconds: 3600,
    });
    const job = await runners.beforeCreate(dispatch, template);
    expect(kube.secrets(NAMESPACE).map((x) => x.metadata.name)).toEqual([
      jitSecretName(jobName),
      jitSecretName(jobName, 1),
      jitSecretName(jobName, 2),
    ]);
    for (const x of kube.secrets(NAMESPACE)) {
      const size = Object.values(x.data ?? {}).reduce((n, v) => n + Buffer.from(v, 'base64').length, 0);
      expect(size).toBeLessThanOrEqual(MAX_SECRET_SIZE);
    }
    const volume = job.spec?.template?.spec?.volumes?.find((v) => v.name === 'jitconfig');
    expect(volume?.secret).toBeUndefined();
    expect(volume?.projected?.sources?.map((s) => s.secret?.name)).toEqual([
      jitSecretName(jobName),
      jitSecretName(jobName, 1),
      jitSecretName(jobName, 2),
    ]);
    // Every index's file is in exactly one of them.
    const keys = kube.secrets(NAMESPACE).flatMap((x) => Object.keys(x.data ?? {}));
    expect(keys.sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);

    expect(await cluster.createJob(job)).toBe('created');
    await runners.afterCreate(dispatch);
    const uid = kube.job(jobName, NAMESPACE)?.metadata?.uid;
    expect(kube.secrets(NAMESPACE).map((x) => x.metadata.ownerReferences?.[0]?.uid)).toEqual([uid, uid, uid]);
    // Garbage-collected with the Job.
    kube.deleteJobOutOfBand(jobName, NAMESPACE);
    expect(kube.secrets(NAMESPACE)).toEqual([]);
  });
});
