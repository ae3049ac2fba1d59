/**
 * The two Kubernetes API servers the contract scenarios (scenarios.ts) run against, behind one
 * interface: the real control plane (tools/k8s/control-plane.ts: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kwok) and tools/local/fake-kube.
 *
 * A pod's fate is the annotation `ci-autoscaler.test/fate` (tools/k8s/kwok-stages.yaml): kwok's
 * stages move the real pods by it; on the fake, setFate() calls the fake's own pod controls.
 * The scaler only ever reaches either through its kubeconfig (on the real one: the token of a
 * user in the group `ci-agent-autoscaler`, with infra/k8s applied to its namespace).
 */
import { join } from 'node:path';
import type { V1Job, V1Pod, V1Secret } from '@kubernetes/client-node';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';
import {
  type ControlPlane,
  FATE,
  type Fate,
  KubeRequestError,
  kustomize,
  ON_DELETE,
  PROJECT_ROOT,
  startControlPlane,
} from '../../tools/k8s/control-plane.js';

export type Refusal = 'ResourceQuota' | 'ServiceAccountMissing' | 'PodSecurity';

/** The messages the API server refuses pods with, as the Job controller's FailedCreate Events carry them. */
const REFUSAL_MESSAGES: Record<Refusal, (namespace: string) => string> = {
  ResourceQuota: () =>
    'pods "x" is forbidden: exceeded quota: agents, requested: pods=1, used: pods=0, limited: pods=0',
  ServiceAccountMissing: (ns) =>
    `pods "x" is forbidden: error looking up service account ${ns}/ci-agent: serviceaccount "ci-agent" not found`,
  PodSecurity: () =>
    'pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "agent" must set securityContext.allowPrivilegeEscalation=false)',
};

export interface Backend {
  readonly name: 'fake-kube' | 'kwok';
  /** The namespace as a deployer makes it (kwok: `infra/k8s` applied there); the scaler's kubeconfig. */
  prepare(namespace: string): Promise<string>;
  jobs(namespace: string): Promise<V1Job[]>;
  pods(namespace: string, jobName?: string): Promise<V1Pod[]>;
  secrets(namespace: string): Promise<V1Secret[]>;
  /** Moves the pods of a Job (all, or the first `count` by name) on to `fate`. */
  setFate(namespace: string, jobName: string, fate: Fate, count?: number): Promise<void>;
  /**
   * The pod's agent handles SIGTERM (finishes its CI job): once deleted it keeps running until
   * endPod. (kwok: the annotation ON_DELETE=hold; fake-kube: every deleted pod waits so.)
   */
  holdOnDelete(namespace: string, podName: string): Promise<void>;
  /** The pod's agent exits: the kubelet reports it Succeeded (exit 0) or Failed (exit 1). */
  endPod(namespace: string, podName: string, phase: 'Succeeded' | 'Failed'): Promise<void>;
  /**
   * Makes the API server refuse the namespace's agent pods as a deployer's mistake would: a
   * ResourceQuota `pods: 0`, the agents' ServiceAccount missing, or PodSecurity `restricted`
   * enforced (with a template that sets no securityContext).
   */
  refusePods(namespace: string, why: Refusal): Promise<void>;
  /** The Job's activeDeadlineSeconds passes now (its pods are killed, the Job Failed DeadlineExceeded). */
  expireDeadline(namespace: string, jobName: string): Promise<void>;
  /** `kubectl delete job` (propagation Background, as kubectl does). */
  deleteJob(namespace: string, name: string): Promise<void>;
  /** Older list snapshots expire: a `continue` token from before gets 410. */
  compact(): Promise<void>;
  stopApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  /** Real controllers act after a while; the fake within the request. */
  readonly settleMs: number;
  stop(): Promise<void>;
}

/** Retries `check` (assertions) until it passes or `timeoutMs` has gone by; the last error otherwise. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 30_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

const byName = (a: { metadata?: { name?: string } }, b: { metadata?: { name?: string } }) =>
  (a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1;

export async function fakeBackend(): Promise<Backend & { fake: FakeKube }> {
  const fake = await startFakeKube();
  const podsOf = (namespace: string, jobName: string) => fake.pods({ namespace, jobName });
  return {
    name: 'fake-kube',
    fake,
    settleMs: 0,
    async prepare() {
      return fake.kubeconfigPath;
    },
    async jobs(namespace) {
      return fake.jobs(namespace);
    },
    async pods(namespace, jobName) {
      return fake.pods({ namespace, ...(jobName ? { jobName } : {}) });
    },
    async secrets(namespace) {
      return fake.secrets(namespace) as unknown as V1Secret[];
    },
    async setFate(namespace, jobName, fate, count) {
      const pods = podsOf(namespace, jobName).slice(0, count);
      for (const p of pods) {
        const name = p.metadata?.name ?? '';
        const phase = p.status?.phase;
        if (phase === 'Succeeded' || phase === 'Failed') continue;
        switch (fate) {
          case 'pending':
            break;
          case 'run':
            if (phase === 'Pending') fake.runPod(name, namespace);
            break;
          case 'succeed':
            if (phase === 'Pending') fake.runPod(name, namespace);
            fake.succeedPod(name, namespace);
            break;
          case 'fail':
            if (phase === 'Pending') fake.runPod(name, namespace);
            fake.failPod(name, { exitCode: 1, namespace });
            break;
          case 'image-pull-failure':
            fake.setPodWaiting(name, 'ErrImagePull', 'failed to pull and unpack image: not found', namespace);
            break;
          case 'out-of-cpu':
            throw new Error('fake-kube has no kubelet admission (OutOfcpu)');
        }
      }
    },
    async refusePods(namespace, why) {
      fake.refusePodCreates(namespace, REFUSAL_MESSAGES[why](namespace));
    },
    async holdOnDelete() {},
    async endPod(namespace, podName, phase) {
      if (phase === 'Succeeded') fake.succeedPod(podName, namespace);
      else fake.failPod(podName, { exitCode: 1, namespace });
    },
    async expireDeadline(namespace, jobName) {
      fake.expireDeadline(jobName, namespace);
    },
    async deleteJob(namespace, name) {
      fake.deleteJobOutOfBand(name, namespace);
    },
    async compact() {
      fake.compact();
    },
    stopApiserver: () => fake.suspend(),
    startApiserver: () => fake.resume(),
    stop: () => fake.stop(),
  };
}

interface List<T> {
  items: T[];
}

export async function kwokBackend(): Promise<Backend & { plane: ControlPlane }> {
  // K8S_PLANE_LOG=1 shows every component's output.
  const plane = await startControlPlane(
    process.env.K8S_PLANE_LOG ? { onOutput: (c, line) => console.error(`[${c}] ${line}`) } : {},
  );
  const get = <T extends { metadata?: { name?: string } }>(path: string) =>
    plane.request<List<T>>('GET', path).then((l) => l.items.sort(byName));
  const pods = (namespace: string, jobName?: string) =>
    get<V1Pod>(
      `/api/v1/namespaces/${namespace}/pods${jobName ? `?labelSelector=${encodeURIComponent(`job-name=${jobName}`)}` : ''}`,
    );
  return {
    name: 'kwok',
    plane,
    settleMs: 30_000,
    async prepare(namespace) {
      await plane.apply(kustomize(join(PROJECT_ROOT, 'infra', 'k8s'), namespace));
      return plane.scalerKubeconfig(namespace);
    },
    jobs: (namespace) => get<V1Job>(`/apis/batch/v1/namespaces/${namespace}/jobs`),
    pods,
    secrets: (namespace) => get<V1Secret>(`/api/v1/namespaces/${namespace}/secrets`),
    async setFate(namespace, jobName, fate, count) {
      // The Job controller makes the pods after the Job: wait for all of those it still runs
      // (pods that ended and went, as a stopped agent's, are counted in its status).
      const all = await eventually(async () => {
        const job = await plane.request<V1Job>('GET', `/apis/batch/v1/namespaces/${namespace}/jobs/${jobName}`);
        const parallelism = job.spec?.parallelism ?? 1;
        const ended = (job.status?.succeeded ?? 0) + (job.status?.failed ?? 0);
        const want = Math.min(parallelism, (job.spec?.completions ?? parallelism) - ended);
        const found = await pods(namespace, jobName);
        const live = found.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
        if (live.length < want) throw new Error(`Job ${jobName} runs ${live.length} of its ${want} pods`);
        return found;
      }, 20_000);
      for (const p of all.slice(0, count)) {
        await plane.request(
          'PATCH',
          `/api/v1/namespaces/${namespace}/pods/${p.metadata?.name}`,
          { metadata: { annotations: { [FATE]: fate } } },
          'application/merge-patch+json',
        );
      }
    },
    async holdOnDelete(namespace, podName) {
      await plane.request(
        'PATCH',
        `/api/v1/namespaces/${namespace}/pods/${podName}`,
        { metadata: { annotations: { [ON_DELETE]: 'hold' } } },
        'application/merge-patch+json',
      );
    },
    async endPod(namespace, podName, phase) {
      // What the kubelet writes when the container exits (kwok-stages.yaml agent-succeed, agent-fail).
      const path = `/api/v1/namespaces/${namespace}/pods/${podName}`;
      const pod = await plane.request<V1Pod>('GET', path);
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const reason = phase === 'Succeeded' ? 'PodCompleted' : 'PodFailed';
      const exitCode = phase === 'Succeeded' ? 0 : 1;
      await plane.request(
        'PATCH',
        `${path}/status`,
        {
          status: {
            phase,
            conditions: [
              ...(pod.status?.conditions ?? []).filter((c) => c.type !== 'Ready' && c.type !== 'ContainersReady'),
              { type: 'Ready', status: 'False', reason, lastTransitionTime: now },
              { type: 'ContainersReady', status: 'False', reason, lastTransitionTime: now },
            ],
            containerStatuses: (pod.spec?.containers ?? []).map((c) => ({
              name: c.name,
              image: c.image,
              imageID: '',
              ready: false,
              restartCount: 0,
              started: false,
              state: {
                terminated: {
                  exitCode,
                  reason: exitCode === 0 ? 'Completed' : 'Error',
                  startedAt: pod.status?.startTime ?? now,
                  finishedAt: now,
                },
              },
            })),
          },
        },
        'application/merge-patch+json',
      );
    },
    async refusePods(namespace, why) {
      const merge = 'application/merge-patch+json';
      if (why === 'ResourceQuota') {
        await plane.request('POST', `/api/v1/namespaces/${namespace}/resourcequotas`, {
          apiVersion: 'v1',
          kind: 'ResourceQuota',
          metadata: { name: 'agents' },
          spec: { hard: { pods: '0' } },
        });
        // Admission counts against the quota once its controller has computed its status.
        await eventually(async () => {
          const q = await plane.request<{ status?: { hard?: Record<string, string> } }>(
            'GET',
            `/api/v1/namespaces/${namespace}/resourcequotas/agents`,
          );
          if (q.status?.hard?.pods !== '0') throw new Error('quota status not computed yet');
        }, 20_000);
      } else if (why === 'ServiceAccountMissing') {
        await plane.request('DELETE', `/api/v1/namespaces/${namespace}/serviceaccounts/ci-agent`);
      } else {
        await plane.request(
          'PATCH',
          `/api/v1/namespaces/${namespace}`,
          { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
          merge,
        );
      }
    },
    async expireDeadline(namespace, jobName) {
      // activeDeadlineSeconds may be changed on a running Job; counted from its startTime.
      await plane.request(
        'PATCH',
        `/apis/batch/v1/namespaces/${namespace}/jobs/${jobName}`,
        { spec: { activeDeadlineSeconds: 1 } },
        'application/merge-patch+json',
      );
      await eventually(async () => {
        const job = await plane.request<V1Job>('GET', `/apis/batch/v1/namespaces/${namespace}/jobs/${jobName}`);
        if (!job.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True'))
          throw new Error(`Job ${jobName} has not failed yet`);
      }, 20_000);
    },
    async deleteJob(namespace, name) {
      // A Job's own default is to orphan its pods and Secrets; kubectl asks for Background.
      await plane.request('DELETE', `/apis/batch/v1/namespaces/${namespace}/jobs/${name}?propagationPolicy=Background`);
    },
    async compact() {
      await plane.compact();
    },
    async stopApiserver() {
      await plane.stopApiserver();
    },
    async startApiserver() {
      await plane.startApiserver();
    },
    stop: () => plane.stop(),
  };
}

export { KubeRequestError };
