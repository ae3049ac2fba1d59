/**
 * The scaler against a real Kubernetes control plane, and the same scenarios against the fake
 * API server (tools/local/fake-kube): one list, two backends (backends.ts). A scenario that
 * passes on one and fails on the other is a bug in the fake.
 *
 * The real one (tools/k8s/control-plane.ts, binaries from `npm run k8s:build`): etcd,
 * kube-apiserver (TLS, RBAC, PodSecurity, ResourceQuota, LimitRanger, ServiceAccount and
 * OwnerReferencesPermissionEnforcement admission), kube-controller-manager (Job, garbage
 * collector, TTL-after-finished, ...), kube-scheduler and kwok nodes. Each scenario gets a
 * namespace with infra/k8s applied to it as `kubectl apply -k` would; the scaler, built by
 * functions/scaler/wiring.ts from a kubeconfig, talks to it only as a user of the group
 * `ci-agent-autoscaler`, so every call it makes passes the real authorizer with the Role of
 * infra/k8s/rbac.yaml. DynamoDB Local and fauxqs as in test/integration.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLimiterStore } from '../../functions/adapters/dynamodb/limiter-store.js';
import { jitSecretName } from '../../functions/adapters/github/jit-runners.js';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { CREATE_GRACE_MS } from '../../functions/core/backoff.js';
import type { JobEventKind, Provider } from '../../functions/core/job-event.js';
import type { DispatchRecord } from '../../functions/core/stores.js';
import { WarmPoolTracker } from '../../functions/core/warm-pool.js';
import type { ScalerLog, ScalerPorts, ScalerSettings } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig, type ScalerConfig } from '../../functions/shared/config.js';
import { type FakeGitHub, startFakeGitHub } from '../../tools/fakes/github/index.js';
import { FATE, ON_DELETE } from '../../tools/k8s/control-plane.js';
import { SIMULATED_AGENT_TEMPLATE } from '../../tools/local/stack.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { TEMPLATE_WITH_TYPOS, writeJobTemplate } from '../support/job-template.js';
import { type SqsHarness, startSqs } from '../support/sqs.js';
import { type Backend, eventually, fakeBackend, kwokBackend } from './backends.js';
import { fixesOnRealPlane } from './fixes.js';
import { localStackOnRealPlane } from './local-stack.js';
import { agentStops } from './stops.js';

let dynamo: DynamoDbLocal;
let sqs: SqsHarness;
let gh: FakeGitHub;
let n = 0;

beforeAll(async () => {
  [dynamo, sqs, gh] = await Promise.all([startDynamoDbLocal(), startSqs(), startFakeGitHub()]);
  useDynamoDbLocal(dynamo.endpoint);
  sqs.useEnv();
  resetAwsClients();
});

afterAll(async () => {
  resetAwsClients();
  await Promise.all([dynamo?.stop(), sqs?.stop(), gh?.stop()]);
});

/** The scaler's log lines, to read its warnings. */
function capture(): ScalerLog & { lines: string[] } {
  const lines: string[] = [];
  const add = (level: string) => (message: string, extra: Record<string, unknown>) =>
    void lines.push(`${level} ${message} ${JSON.stringify(extra)}`);
  return { lines, debug: add('debug'), info: add('info'), warn: add('warn'), error: add('error') };
}

interface World {
  config: ScalerConfig;
  settings: ScalerSettings;
  ports: ScalerPorts;
  namespace: string;
  log: ReturnType<typeof capture>;
  send(jobId: string, kind: JobEventKind): Promise<void>;
  tick(ports?: ScalerPorts): ReturnType<typeof tick>;
  limiter(): Promise<{ inFlight: number }>;
  dispatches(): Promise<DispatchRecord[]>;
  jobs(): Promise<V1Job[]>;
  /** Agents in flight by the scaler's own reading of its Jobs. */
  live(): Promise<number>;
  /** A fresh set of ports: another scaler invocation of the same deployment. */
  invocation(): Promise<ScalerPorts>;
}

async function world(backend: Backend, env: Record<string, string> = {}, provider: Provider = 'buildkite') {
  n++;
  const namespace = `ci-${backend.name}-${n}`;
  const table = `k8s-ledger-${n}`;
  const queue = await sqs.createQueue(`k8s-events-${n}`, { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
  await createLedgerTable(dynamo.endpoint, table);
  const kubeconfig = await backend.prepare(namespace);
  const config = loadScalerConfig({
    EVENTS_QUEUE_URL: queue.url,
    LEDGER_TABLE: table,
    KUBECONFIG: kubeconfig,
    KUBE_NAMESPACE: namespace,
    MAX_AGENTS: '10',
    ...(provider === 'github'
      ? {
          JOB_TEMPLATE: 'github',
          GITHUB_APP_ID: String(gh.appId),
          GITHUB_APP_PRIVATE_KEY: gh.privateKey,
          GITHUB_RUNNER_OWNER: 'acme',
          GITHUB_API_URL: gh.url,
        }
      : {}),
    ...env,
  });
  const log = capture();
  const wire = async () => {
    const { metrics: _metrics, ...ports } = await createPorts(config, log);
    return ports as ScalerPorts;
  };
  const ports = await wire();
  const settings = scalerSettings(config);
  const events = createEventsQueue(queue.url);
  const limiterStore = new DynamoLimiterStore({ tableName: table });
  const w: World = {
    config,
    settings,
    ports,
    namespace,
    log,
    async send(jobId, kind) {
      await events.sendEvent(jobEvent(jobId, kind, { provider, queue: 'default' }));
    },
    tick: (p = ports) => tick(p, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 }),
    async limiter() {
      const s = await limiterStore.snapshot();
      return { inFlight: s.limiters.find((l) => l.queue === 'default')?.inFlight ?? 0 };
    },
    dispatches: async () => (await limiterStore.snapshot()).dispatches,
    jobs: () => backend.jobs(namespace),
    async live() {
      return (await backend.jobs(namespace)).reduce((sum, j) => sum + (ports.jobs.describe(j)?.live ?? 0), 0);
    },
    invocation: wire,
  };
  return w;
}

const parallelism = (jobs: V1Job[]) => jobs.reduce((sum, j) => sum + (j.spec?.parallelism ?? 0), 0);

/** One scenario list, run against each backend; returns the backend for checks of one of them. */
function scenarios<B extends Backend>(start: () => Promise<B>): () => B {
  let backend: B;
  beforeAll(async () => {
    backend = await start();
  }, 120_000);
  afterAll(async () => {
    await backend?.stop();
  });
  /** How long a wait for controllers may take on this backend. */
  const settle = () => Math.max(backend.settleMs, 1000);

  it('turns a burst into ONE Job with completions = parallelism, never more than MAX_AGENTS in flight', async () => {
    const w = await world(backend);
    await Promise.all(Array.from({ length: 15 }, (_, i) => w.send(`job-${i}`, 'scheduled')));
    const first = await w.tick();
    expect(first.errors).toEqual([]);
    const [job, ...others] = await w.jobs();
    expect(others).toEqual([]);
    expect(job?.spec).toMatchObject({ completions: 10, parallelism: 10, completionMode: 'Indexed' });
    expect(await w.limiter()).toEqual({ inFlight: 10 });
    const name = job?.metadata?.name ?? '';

    // At MAX nothing more is asked, with the pods Pending or Running.
    await w.tick();
    await backend.setFate(w.namespace, name, 'run');
    await eventually(async () => {
      const pods = await backend.pods(w.namespace, name);
      expect(pods.filter((p) => p.status?.phase === 'Running')).toHaveLength(10);
    }, settle());
    await Promise.all(Array.from({ length: 10 }, (_, i) => w.send(`job-${i}`, 'started')));
    await w.tick();
    expect(await w.jobs()).toHaveLength(1);
    expect(await w.live()).toBe(10);

    // The 10 agents finish: their tokens come back and the 5 still pending get ONE new Job.
    await Promise.all(Array.from({ length: 10 }, (_, i) => w.send(`job-${i}`, 'finished')));
    await backend.setFate(w.namespace, name, 'succeed');
    // (Ticking while only some have ended would rightly count the others as idle supply.)
    await eventually(async () => {
      const pods = await backend.pods(w.namespace, name);
      expect(pods.filter((p) => p.status?.phase === 'Succeeded')).toHaveLength(10);
      // ... and the Job controller has counted them (it follows the pods a moment later).
      expect(await w.live()).toBe(0);
    }, settle());
    await eventually(async () => {
      await w.tick();
      expect(await w.live()).toBeLessThanOrEqual(10);
      expect(await w.limiter()).toEqual({ inFlight: 5 });
      expect(await w.jobs()).toHaveLength(2);
    }, settle());
    const second = (await w.jobs()).find((j) => j.metadata?.name !== name);
    expect(second?.spec).toMatchObject({ completions: 5, parallelism: 5 });
    expect(await w.live()).toBe(5);
  });

  it('never exceeds MAX_AGENTS with 4 scaler invocations ticking at once', async () => {
    const w = await world(backend, { MAX_AGENTS: '7' });
    await Promise.all(Array.from({ length: 30 }, (_, i) => w.send(`c-${i}`, 'scheduled')));
    const invocations = await Promise.all(Array.from({ length: 4 }, () => w.invocation()));
    await Promise.all(invocations.map((p) => w.tick(p)));
    expect(parallelism(await w.jobs())).toBeLessThanOrEqual(7);
    expect((await w.limiter()).inFlight).toBeLessThanOrEqual(7);
    await w.tick();
    expect(parallelism(await w.jobs())).toBe(7);
    expect(await w.limiter()).toEqual({ inFlight: 7 });
  });

  it('treats the 409 of a retried dispatch as success: one Job, tokens counted once', async () => {
    const w = await world(backend);
    await w.send('x', 'scheduled');
    let created = 0;
    const crashAfterCreate: ScalerPorts = {
      ...w.ports,
      cluster: {
        ...w.ports.cluster,
        createJob: async (job) => {
          expect(await w.ports.cluster.createJob(job)).toBe('created');
          created++;
          throw new Error('crashed after the create');
        },
      },
    };
    await w.tick(crashAfterCreate);
    expect(created).toBe(1);
    expect(await w.jobs()).toHaveLength(1);
    // The same dispatch sent again (a retry that did not see the Job in its list): the server
    // answers 409 AlreadyExists, which the adapter reports as success.
    const [dispatch] = await w.dispatches();
    if (!dispatch) throw new Error('no dispatch recorded');
    const again = w.ports.jobs.build(dispatch);
    expect(again.metadata?.name).toBe((await w.jobs())[0]?.metadata?.name);
    expect(await w.ports.cluster.createJob(again)).toBe('exists');
    await w.tick();
    expect(await w.jobs()).toHaveLength(1);
    expect(await w.limiter()).toEqual({ inFlight: 1 });
  });

  it('creates nothing twice and leaks no token when the API server restarts in the middle of a tick', async () => {
    const w = await world(backend);
    await Promise.all(['a', 'b', 'c'].map((id) => w.send(id, 'scheduled')));
    // The tick lists the Jobs, reserves, then its create meets an API server that went away.
    const restarting: ScalerPorts = {
      ...w.ports,
      cluster: {
        ...w.ports.cluster,
        createJob: async (job) => {
          await backend.stopApiserver();
          try {
            return await w.ports.cluster.createJob(job);
          } finally {
            await backend.startApiserver();
          }
        },
      },
    };
    const broken = await w.tick(restarting);
    expect(broken.errors.join('\n')).toMatch(/create job/);
    expect(await w.jobs()).toHaveLength(0);
    expect(await w.limiter()).toEqual({ inFlight: 3 });
    // The next tick, on the same ports (and keep-alive connections), repairs it.
    await eventually(async () => {
      const report = await w.tick();
      expect(report.errors).toEqual([]);
      expect(parallelism(await w.jobs())).toBe(3);
    }, 20_000);
    await w.tick();
    expect(await w.jobs()).toHaveLength(1);
    expect(await w.limiter()).toEqual({ inFlight: 3 });
  });

  it('deletes a finished Job after ttlSecondsAfterFinished, and the scaler forgets it', async () => {
    const w = await world(backend, { INTENT_LEASE_SECONDS: '10', JOB_TTL_SECONDS_AFTER_FINISHED: '10' });
    await w.send('t', 'scheduled');
    await w.tick();
    const [job] = await w.jobs();
    expect(job?.spec?.ttlSecondsAfterFinished).toBe(10);
    await w.send('t', 'started');
    await w.send('t', 'finished');
    await backend.setFate(w.namespace, job?.metadata?.name ?? '', 'succeed');
    await eventually(async () => expect(await w.jobs()).toEqual([]), settle() + 15_000);
    await eventually(async () => expect(await backend.pods(w.namespace)).toEqual([]), settle());
    await w.tick();
    expect(await w.limiter()).toEqual({ inFlight: 0 });
    expect(await w.jobs()).toEqual([]);
  });

  it('pages the Job list with limit/continue, and lists again after a 410 Expired (compaction)', async () => {
    const w = await world(backend, { MAX_AGENTS: '1' });
    // Five Jobs of ours, one per tick (MAX 1, each agent finishing before the next).
    for (let i = 0; i < 5; i++) {
      await w.send(`p-${i}`, 'scheduled');
      await w.tick();
      const open = (await w.jobs()).filter((j) => (w.ports.jobs.describe(j)?.live ?? 0) > 0);
      for (const j of open) await backend.setFate(w.namespace, j.metadata?.name ?? '', 'succeed');
      await w.send(`p-${i}`, 'started');
      await w.send(`p-${i}`, 'finished');
      await eventually(async () => expect(await w.live()).toBe(0), settle());
    }
    const names = (await w.jobs()).map((j) => j.metadata?.name).sort();
    expect(names).toHaveLength(5);

    // The adapter pages through them two at a time.
    const paged = await createCluster(w.config.cluster, w.namespace, { pageSize: 2 });
    expect((await paged.listAgentJobs()).map((j) => j.metadata?.name).sort()).toEqual(names);

    // A continue token from before a compaction: 410 Expired, as the scaler's identity.
    const { KubeConfig, BatchV1Api } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    kc.loadFromFile(w.config.cluster.kind === 'kubeconfig-file' ? w.config.cluster.path : '');
    const api = kc.makeApiClient(BatchV1Api);
    const page = await api.listNamespacedJob({ namespace: w.namespace, limit: 2 });
    expect(page.items).toHaveLength(2);
    const token = page.metadata?._continue;
    expect(token).toBeTruthy();
    // A write after the first page, then the compaction: the page's revision is gone.
    await w.send('after', 'scheduled');
    await w.tick();
    await backend.compact();
    // (The real apiserver serves the continuation from its watch cache until it learns of the
    // compaction: at most its 15 s poll.)
    const expired = await eventually(
      async () => {
        const e = await api.listNamespacedJob({ namespace: w.namespace, limit: 2, _continue: token ?? '' }).then(
          () => undefined,
          (err: { code?: number; body?: string }) => err,
        );
        expect(e?.code).toBe(410);
        return e;
      },
      30_000,
      1000,
    );
    expect(JSON.parse(expired?.body ?? '{}')).toMatchObject({ reason: 'Expired', code: 410 });
    // A fresh list (what the adapter does on 410) is whole.
    expect(await paged.listAgentJobs()).toHaveLength(6);
  });

  it('GitHub: the JIT Secret is owned by its Job and the garbage collector deletes it with the Job', async () => {
    gh.reset();
    const w = await world(backend, {}, 'github');
    await Promise.all(['g1', 'g2', 'g3'].map((id) => w.send(id, 'scheduled')));
    const report = await w.tick();
    expect(report.errors).toEqual([]);
    const [job] = await w.jobs();
    const name = job?.metadata?.name ?? '';
    expect(job?.spec?.parallelism).toBe(3);
    const secret = (await backend.secrets(w.namespace)).find((s) => s.metadata?.name === jitSecretName(name));
    expect(secret?.metadata?.ownerReferences).toEqual([
      { apiVersion: 'batch/v1', kind: 'Job', name, uid: job?.metadata?.uid, blockOwnerDeletion: false },
    ]);
    expect(Object.keys(secret?.data ?? {}).sort()).toEqual(['0', '1', '2']);

    // An operator deletes the Job: its Secret goes with it.
    await backend.deleteJob(w.namespace, name);
    await eventually(async () => {
      const names = (await backend.secrets(w.namespace)).map((s) => s.metadata?.name);
      expect(names).not.toContain(jitSecretName(name));
    }, settle());
  });

  it.each(['ResourceQuota', 'ServiceAccountMissing', 'PodSecurity'] as const)(
    'a Job whose pods the API server refuses (%s): the queue backs off within two ticks naming it, its tokens come back',
    async (why) => {
      // PodSecurity: `restricted` enforced and a template without any securityContext.
      const w = await world(backend, why === 'PodSecurity' ? { JOB_TEMPLATE: SIMULATED_AGENT_TEMPLATE } : {});
      await backend.refusePods(w.namespace, why);
      await Promise.all(['r1', 'r2', 'r3'].map((id) => w.send(id, 'scheduled')));
      const first = await w.tick();
      expect(first.errors).toEqual([]);
      const [job, ...others] = await w.jobs();
      expect(others).toEqual([]);
      expect(job?.spec?.parallelism).toBe(3);
      // The Job controller's creates fail (FailedCreate Events only); the scaler looks once the
      // Job has had no pod for CREATE_GRACE_MS.
      await new Promise((r) => setTimeout(r, CREATE_GRACE_MS + 1000));
      const second = await w.tick();
      expect(second.errors).toEqual([]);
      const backsOff = w.log.lines.filter((l) => l.startsWith('warn') && l.includes('backs off'));
      expect(backsOff).toHaveLength(1);
      expect(backsOff[0]).toContain(`agent failed at start (${why}: the pods of Job ${job?.metadata?.name}`);
      expect(await w.limiter()).toEqual({ inFlight: 0 });
      expect(await backend.pods(w.namespace)).toEqual([]);
      // Held: no new Job while the back-off lasts.
      await w.tick();
      expect((await w.jobs()).filter((j) => j.metadata?.name !== job?.metadata?.name)).toEqual([]);
    },
    90_000,
  );

  it('a Job killed by its activeDeadlineSeconds soon after its agents started is no start failure', async () => {
    const w = await world(backend);
    await Promise.all(['d1', 'd2'].map((id) => w.send(id, 'scheduled')));
    await w.tick();
    const [job] = await w.jobs();
    const name = job?.metadata?.name ?? '';
    await backend.setFate(w.namespace, name, 'run');
    await eventually(async () => {
      const pods = await backend.pods(w.namespace, name);
      expect(pods.filter((p) => p.status?.phase === 'Running')).toHaveLength(2);
    }, settle());
    await backend.expireDeadline(w.namespace, name);
    // The Job controller kills the pods and counts them failed.
    await eventually(async () => {
      const [j] = await w.jobs();
      expect(j?.status?.failed).toBe(2);
    }, settle());
    const report = await w.tick();
    expect(report.errors).toEqual([]);
    expect(w.log.lines.filter((l) => l.includes('backs off'))).toEqual([]);
    expect(w.ports.backoff?.gate('default', Date.now()).step).toBe(0);
    // Not held: the two CI jobs still waiting get two new agents at once.
    const again = (await w.jobs()).filter((j) => j.metadata?.name !== name);
    expect(again.map((j) => j.spec?.parallelism)).toEqual([2]);
    expect(await w.limiter()).toEqual({ inFlight: 2 });
  });

  it('a warm pool whose target dropped: the tick stops exactly scaleDown agents, newest Running and Ready first; tokens come back once their pods end', async () => {
    // Agents that wait Pending until the test starts them (kwok: fate pending), one by one.
    const tpl = writeJobTemplate([
      '    metadata:',
      `      annotations: { '${FATE}': pending, '${ON_DELETE}': hold }`,
      '    spec:',
      '      serviceAccountName: ci-agent',
      '      automountServiceAccountToken: false',
      '      containers: [{ name: agent, image: busybox:1.37.0 }]',
    ]);
    const w = await world(backend, { JOB_TEMPLATE: tpl.path, WARM_POOL: 'adaptive' });
    tpl.remove();
    // The pool's target, as the tracker would size it.
    class PinnedPool extends WarmPoolTracker {
      warm = 5;
      override size(queue: string, now: number) {
        return { ...super.size(queue, now), warm: this.warm };
      }
    }
    const pool = new PinnedPool();
    const ports: ScalerPorts = { ...w.ports, warmPool: pool };
    const first = await w.tick(ports);
    expect(first.decisions[0]).toMatchObject({ count: 5, reason: 'warm' });
    const [job] = await w.jobs();
    const name = job?.metadata?.name ?? '';
    const podsNow = () => backend.pods(w.namespace, name);
    const index = (p: V1Pod) => p.metadata?.labels?.['batch.kubernetes.io/job-completion-index'];
    const byIndex = async (i: number) => (await podsNow()).find((p) => index(p) === String(i));
    // Indexes 0..3 start a second apart (0 first); index 4 stays Pending.
    for (let started = 1; started <= 4; started++) {
      await backend.setFate(w.namespace, name, 'run', started);
      await eventually(async () => {
        const running = (await podsNow()).filter((p) => p.status?.phase === 'Running');
        expect(running).toHaveLength(started);
      }, settle());
      if (started < 4) await new Promise((r) => setTimeout(r, 1100));
    }
    const original = (await podsNow()).map((p) => p.metadata?.name).sort();
    // Index 0, the oldest, was stopped just now (an earlier tick): it is leaving.
    const zero = await byIndex(0);
    const grace = w.config.jobActiveDeadlineSeconds;
    expect(
      await w.ports.cluster.deletePod!({ name: zero?.metadata?.name ?? '', uid: zero?.metadata?.uid ?? '' }, grace),
    ).toBe('deleted');

    // The target drops to 2: 3 idle agents beyond it, 1 already leaving, so 2 more stopped, the newest.
    pool.warm = 2;
    const second = await w.tick(ports);
    expect(second.errors).toEqual([]);
    expect(second.decisions[0]).toMatchObject({ count: 0, idle: 5, scaleDown: 3 });
    const names = async (...indexes: number[]) =>
      Promise.all(indexes.map(async (i) => (await byIndex(i))?.metadata?.name));
    expect(second.stops).toEqual([
      expect.objectContaining({ scaleDown: 3, stopping: 1, candidates: 3, stopped: await names(3, 2) }),
    ]);
    expect(w.log.lines.filter((l) => l.startsWith('info surplus agents stopped'))).toHaveLength(1);
    const deleting = async () =>
      (await podsNow())
        .filter((p) => p.metadata?.deletionTimestamp)
        .map((p) => index(p))
        .sort();
    expect(await deleting()).toEqual(['0', '2', '3']);
    expect((await byIndex(3))?.metadata?.deletionGracePeriodSeconds).toBe(grace);
    // While they terminate: no replacement, every token held.
    await eventually(async () => {
      const [j] = await w.jobs();
      expect(j?.status).toMatchObject({ active: 2, terminating: 3 });
    }, settle());
    const third = await w.tick(ports);
    expect(third.stops).toEqual([expect.objectContaining({ stopped: [], stopping: 3 })]);
    expect(await w.limiter()).toEqual({ inFlight: 5 });
    expect((await podsNow()).map((p) => p.metadata?.name).sort()).toEqual(original);

    // Index 3 was idle and exits 0 (the kubelet reports it): its token, and only its, comes back.
    await backend.endPod(w.namespace, (await names(3))[0] ?? '', 'Succeeded');
    await eventually(async () => {
      const [j] = await w.jobs();
      expect(j?.status).toMatchObject({ succeeded: 1, active: 2, terminating: 2 });
    }, settle());
    await w.tick(ports);
    expect(await w.limiter()).toEqual({ inFlight: 4 });
    expect(await w.jobs()).toHaveLength(1);
    const after = (await podsNow()).map((p) => p.metadata?.name);
    expect(after.every((n) => original.includes(n))).toBe(true);
  }, 120_000);

  it('a custom template with a typo: the first tick fails its create naming the unknown fields, nothing is made', async () => {
    const tpl = writeJobTemplate(TEMPLATE_WITH_TYPOS);
    const w = await world(backend, { JOB_TEMPLATE: tpl.path });
    await w.send('t-0', 'scheduled');
    const report = await w.tick();
    tpl.remove();
    expect(report.errors).toEqual([
      expect.stringContaining(
        'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolice", unknown field "spec.template.spec.nodeSelecter"',
      ),
    ]);
    expect(await w.jobs()).toEqual([]);
  });

  return () => backend;
}

describe('scaler against fake-kube', () => {
  const fake = scenarios(async () => fakeBackend());
  agentStops(fake, 'fake-kube');
});

describe('scaler against a real control plane (kube-apiserver, etcd, controllers, kwok)', () => {
  const real = scenarios(async () => {
    const b = await kwokBackend();
    console.log(`Kubernetes ${b.plane.version} control plane at ${b.plane.server}, started in ${b.plane.startMs} ms`);
    return b;
  });

  fixesOnRealPlane(real);
  localStackOnRealPlane(real);
  agentStops(real, 'real control plane');

  it('the scaler is a user of the group ci-agent-autoscaler, and the Role of infra/k8s is all it may do', async () => {
    const b = real();
    const namespace = 'ci-kwok-rbac';
    const kubeconfig = await b.prepare(namespace);
    const { KubeConfig, AuthenticationV1Api, BatchV1Api, CoreV1Api } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(review.status?.userInfo?.groups).toContain('ci-agent-autoscaler');
    expect(review.status?.userInfo?.groups).not.toContain('system:masters');
    const batch = kc.makeApiClient(BatchV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    expect((await batch.listNamespacedJob({ namespace })).items).toEqual([]);
    const status = (p: Promise<unknown>) =>
      p.then(
        () => 200,
        (e: { code?: number }) => e.code,
      );
    // Granted: list jobs and pods, delete a pod (an agent's stop: 404 for none); refused: reading
    // Secrets, deleting every pod at once, other namespaces.
    expect(await status(core.listNamespacedPod({ namespace }))).toBe(200);
    expect(await status(core.deleteNamespacedPod({ namespace, name: 'any' }))).toBe(404);
    expect(await status(core.deleteCollectionNamespacedPod({ namespace }))).toBe(403);
    expect(await status(core.listNamespacedSecret({ namespace }))).toBe(403);
    expect(await status(core.readNamespacedSecret({ namespace, name: 'any' }))).toBe(403);
    expect(await status(batch.listNamespacedJob({ namespace: 'default' }))).toBe(403);
  });

  it('kwok moves an agent pod by its fate: exit non-zero, image pull failure, OutOfcpu', async () => {
    const b = real();
    const namespace = 'ci-kwok-fates';
    await b.prepare(namespace);
    const job = (name: string, fate: string) => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name, namespace },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: { annotations: { 'ci-autoscaler.test/fate': fate, 'ci-autoscaler.test/exit-code': '3' } },
          spec: {
            serviceAccountName: 'ci-agent',
            automountServiceAccountToken: false,
            restartPolicy: 'Never',
            containers: [{ name: 'agent', image: 'example.invalid/agent:1' }],
          },
        },
      },
    });
    for (const [name, fate] of [
      ['fails', 'fail'],
      ['pull', 'image-pull-failure'],
      ['cpu', 'out-of-cpu'],
      ['done', 'succeed'],
    ] as const)
      await b.plane.request('POST', `/apis/batch/v1/namespaces/${namespace}/jobs`, job(name, fate));
    await eventually(async () => {
      const [fails] = await b.pods(namespace, 'fails');
      expect(fails?.status?.phase).toBe('Failed');
      expect(fails?.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
      const [pull] = await b.pods(namespace, 'pull');
      expect(pull?.status?.phase).toBe('Pending');
      expect(pull?.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe('ErrImagePull');
      const [cpu] = await b.pods(namespace, 'cpu');
      expect(cpu?.status).toMatchObject({ phase: 'Failed', reason: 'OutOfcpu' });
      const [done] = await b.pods(namespace, 'done');
      expect(done?.status?.phase).toBe('Succeeded');
    }, 30_000);
    // The Job controller reads them as a real kubelet's: failed, failed, still active, succeeded.
    await eventually(async () => {
      const jobs = Object.fromEntries((await b.jobs(namespace)).map((j) => [j.metadata?.name, j.status]));
      expect(jobs.fails?.failed).toBe(1);
      expect(jobs.cpu?.failed).toBe(1);
      expect(jobs.pull?.active).toBe(1);
      expect(jobs.done?.succeeded).toBe(1);
    }, 30_000);
  });
});
