/**
 * The scaler's ClusterPort (scaler/ports.ts) on the Kubernetes API: list our agent Jobs, create
 * one. Every call has a timeout; 408/429/5xx, timeouts and network errors throw
 * RetryableKubeError (nothing is lost: the scaler retries the dispatch next tick), other failures
 * KubeApiError.
 *
 * Calls made (keep infra/k8s/rbac.yaml in step): jobs list, create, delete; pods list, delete
 * (the graceful stop of a surplus agent); events list; secrets create, patch (its
 * ownerReference), delete (all namespaced). Setting an ownerReference needs `delete` on the
 * Secret under the admission plugin
 * OwnerReferencesPermissionEnforcement; the reference never blocks its owner's deletion, so no
 * `update` on jobs/finalizers is needed.
 */
import type { AgentOptions } from 'node:https';
import {
  BatchV1Api,
  type Cluster,
  CoreV1Api,
  type CoreV1Event,
  createConfiguration,
  type KubeConfig,
  PatchStrategy,
  type RequestContext,
  type ResponseContext,
  ServerConfiguration,
  setHeaderOptions,
  type V1Job,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { AGENT_JOB_SELECTOR } from '../../core/agent-job.js';
import type { ClusterPort, CreateFailure } from '../../scaler/ports.js';
import { chunks } from '../../shared/concurrency.js';
import type { ClusterAccess } from '../../shared/config.js';
import { KubeApiError, toKubeError } from './errors.js';
import { type KubeConfigDeps, loadKubeConfig } from './kubeconfig.js';

export interface ClusterOptions extends KubeConfigDeps {
  /** Per-request timeout (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Page size of list calls (default 500). */
  readonly pageSize?: number;
}

/** Job names per pod list: the selector stays under 8 KB of URL (a Job name is at most 63 characters). */
export const JOB_NAMES_PER_LIST = 100;

/**
 * The label selectors of the pods of these Jobs: ours (AGENT_JOB_SELECTOR) AND a set-based
 * `job-name in (...)` on the label the Job controller puts on every pod it creates (the legacy
 * `job-name`, which every Kubernetes version sets, beside `batch.kubernetes.io/job-name` since
 * 1.27), at most JOB_NAMES_PER_LIST names each; none for no Job. With `firstIndexes`, only the
 * pods of those completion indexes (the `batch.kubernetes.io/job-completion-index` label of an
 * Indexed Job's pods, on by default since Kubernetes 1.28).
 */
export function jobPodSelectors(jobNames: readonly string[], firstIndexes?: number): string[] {
  const names = [...new Set(jobNames)].sort();
  const indexes =
    firstIndexes === undefined
      ? ''
      : `,batch.kubernetes.io/job-completion-index in (${Array.from({ length: firstIndexes }, (_, i) => i).join(',')})`;
  return chunks(names, JOB_NAMES_PER_LIST).map(
    (chunk) => `${AGENT_JOB_SELECTOR},job-name in (${chunk.join(',')})${indexes}`,
  );
}

export async function createCluster(
  access: ClusterAccess,
  namespace: string,
  options: ClusterOptions = {},
): Promise<ClusterPort> {
  const { kubeConfig } = await loadKubeConfig(access, namespace, options);
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no current cluster');
  keepOneDispatcher(kubeConfig);
  const timeoutMs = options.timeoutMs ?? 5000;
  const pageSize = options.pageSize ?? 500;
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(server, {}),
    authMethods: { default: kubeConfig },
    promiseMiddleware: [
      {
        pre: async (context: RequestContext) => {
          context.setSignal(AbortSignal.timeout(timeoutMs) as Parameters<RequestContext['setSignal']>[0]);
          return context;
        },
        post: async (context: ResponseContext) => context,
      },
    ],
  });
  const batch = new BatchV1Api(configuration);
  const core = new CoreV1Api(configuration);

  async function call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw toKubeError(e, operation);
    }
  }

  async function listPods(labelSelector: string, fieldSelector?: string): Promise<V1Pod[]> {
    const pods: V1Pod[] = [];
    let cont: string | undefined;
    do {
      const page = await call(`list pods in ${namespace}`, () =>
        core.listNamespacedPod({
          namespace,
          labelSelector,
          ...(fieldSelector ? { fieldSelector } : {}),
          limit: pageSize,
          ...(cont ? { _continue: cont } : {}),
        }),
      );
      pods.push(...page.items);
      cont = page.metadata?._continue || undefined;
    } while (cont);
    return pods;
  }

  async function listEvents(fieldSelector: string): Promise<CoreV1Event[]> {
    const events: CoreV1Event[] = [];
    let cont: string | undefined;
    do {
      const page = await call(`list events in ${namespace}`, () =>
        core.listNamespacedEvent({
          namespace,
          fieldSelector,
          limit: pageSize,
          ...(cont ? { _continue: cont } : {}),
        }),
      );
      events.push(...page.items);
      cont = page.metadata?._continue || undefined;
    } while (cont);
    return events;
  }

  async function jobUid(jobName: string, what: string): Promise<string> {
    const found = await call(`find job ${namespace}/${jobName}`, () =>
      batch.listNamespacedJob({
        namespace,
        labelSelector: AGENT_JOB_SELECTOR,
        fieldSelector: `metadata.name=${jobName}`,
      }),
    );
    const uid = found.items[0]?.metadata?.uid;
    if (!uid) throw new KubeApiError(`job ${namespace}/${jobName} not found for ${what}`, 404, 'NotFound');
    return uid;
  }

  const ownerReference = (jobName: string, uid: string) => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    name: jobName,
    uid,
    // Blocking would need `update` on jobs/finalizers (OwnerReferencesPermissionEnforcement).
    blockOwnerDeletion: false,
  });

  async function listAll(): Promise<V1Job[]> {
    const jobs: V1Job[] = [];
    let cont: string | undefined;
    do {
      const page = await call(`list jobs in ${namespace}`, () =>
        batch.listNamespacedJob({
          namespace,
          labelSelector: AGENT_JOB_SELECTOR,
          limit: pageSize,
          ...(cont ? { _continue: cont } : {}),
        }),
      );
      jobs.push(...page.items);
      cont = page.metadata?._continue || undefined;
    } while (cont);
    return jobs;
  }

  async function createSecret(body: V1Secret): Promise<'created' | 'exists'> {
    const name = body.metadata?.name ?? '(unnamed)';
    try {
      await core.createNamespacedSecret({ namespace, body, fieldValidation: 'Strict' }, asIs(body));
      return 'created';
    } catch (e) {
      // The error names the Secret, never its content.
      const err = toKubeError(e, `create secret ${namespace}/${name}`);
      if (err.status === 409 && err.reason === 'AlreadyExists') return 'exists';
      throw err;
    }
  }

  return {
    async listAgentJobs() {
      try {
        return await listAll();
      } catch (e) {
        // 410 Expired: the continue token outlived the server's history; a fresh list is consistent.
        if (e instanceof KubeApiError && e.status === 410) return listAll();
        throw e;
      }
    },

    async listAgentPods(query) {
      const fieldSelector = query?.phase ? `status.phase=${query.phase}` : undefined;
      const list = async (selector: string) => {
        try {
          return await listPods(selector, fieldSelector);
        } catch (e) {
          if (e instanceof KubeApiError && e.status === 410) return listPods(selector, fieldSelector);
          throw e;
        }
      };
      if (!query) return list(AGENT_JOB_SELECTOR);
      const pods: V1Pod[] = [];
      for (const selector of jobPodSelectors(query.jobNames, query.firstIndexes)) pods.push(...(await list(selector)));
      return pods;
    },

    async createJobSecret(jobName, secret) {
      const name = secret.metadata?.name ?? '(unnamed)';
      const uid = await jobUid(jobName, `its secret ${name}`);
      const body: V1Secret = {
        ...secret,
        metadata: { ...secret.metadata, namespace, ownerReferences: [ownerReference(jobName, uid)] },
      };
      return createSecret(body);
    },

    createSecret: (secret) => createSecret({ ...secret, metadata: { ...secret.metadata, namespace } }),

    async ownSecret(secretName, jobName) {
      const uid = await jobUid(jobName, `its secret ${secretName}`);
      await call(`set the owner of secret ${namespace}/${secretName}`, () =>
        core.patchNamespacedSecret(
          { name: secretName, namespace, body: { metadata: { ownerReferences: [ownerReference(jobName, uid)] } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        ),
      );
    },

    async deleteSecret(secretName) {
      try {
        await core.deleteNamespacedSecret({ name: secretName, namespace });
      } catch (e) {
        const err = toKubeError(e, `delete secret ${namespace}/${secretName}`);
        if (err.status !== 404) throw err;
      }
    },

    async deleteJob(jobName) {
      try {
        // Background: the garbage collector deletes its pods (and its Secrets) after it.
        await batch.deleteNamespacedJob({ name: jobName, namespace, propagationPolicy: 'Background' });
      } catch (e) {
        const err = toKubeError(e, `delete job ${namespace}/${jobName}`);
        if (err.status !== 404) throw err;
      }
    },

    async deletePod(pod, gracePeriodSeconds) {
      try {
        // The grace period both as a query parameter and in the body, as kubectl sends it; the
        // uid precondition makes a pod of the same name created since the list a 409.
        await core.deleteNamespacedPod({
          name: pod.name,
          namespace,
          gracePeriodSeconds,
          body: { gracePeriodSeconds, preconditions: { uid: pod.uid } },
        });
        return 'deleted';
      } catch (e) {
        const err = toKubeError(e, `delete pod ${namespace}/${pod.name}`);
        if (err.status === 404 || err.status === 409) return 'gone';
        throw err;
      }
    },

    async listCreateFailures(jobNames) {
      const wanted = new Set(jobNames);
      if (wanted.size === 0) return [];
      const list = () => listEvents('involvedObject.kind=Job,reason=FailedCreate');
      let events: CoreV1Event[];
      try {
        events = await list();
      } catch (e) {
        if (!(e instanceof KubeApiError && e.status === 410)) throw e;
        events = await list();
      }
      // The newest event per Job (the recorder aggregates repeats: count and lastTimestamp grow).
      const latest = new Map<string, CreateFailure>();
      for (const ev of events) {
        const jobName = ev.involvedObject?.name;
        if (!jobName || !wanted.has(jobName)) continue;
        const at = eventTime(ev);
        const seen = latest.get(jobName);
        if (!seen || at >= seen.at)
          latest.set(jobName, {
            jobName,
            ...(ev.involvedObject.uid ? { uid: ev.involvedObject.uid } : {}),
            message: ev.message ?? 'FailedCreate',
            at,
          });
      }
      return [...latest.values()];
    },

    async createJob(job) {
      const name = job.metadata?.name ?? '(unnamed)';
      try {
        // Strict: a field the server does not know (a typo in a custom template) is a 400 naming
        // it, not a field silently dropped from the agents' pods.
        await batch.createNamespacedJob({ namespace, body: job, fieldValidation: 'Strict' }, asIs(job));
        return 'created';
      } catch (e) {
        const err = toKubeError(e, `create job ${namespace}/${name}`);
        if (err.status === 409 && err.reason === 'AlreadyExists') return 'exists';
        throw err;
      }
    },
  };
}

/**
 * One keep-alive connection pool per cluster. client-node 2.0.1 builds a new undici Agent for
 * EVERY request when the cluster has TLS options (a CA, client certificates:
 * KubeConfig.applySecurityAuthentication -> createDispatcher), so each call opened a new TCP
 * and TLS connection. The Agent is made once and reused while the options it was made from
 * (createDispatcherOptions: CA, certificates, proxy) stay the same; new options (a rotated
 * client certificate) get a new one.
 */
export function keepOneDispatcher(kubeConfig: KubeConfig): void {
  type Make = (cluster: Cluster | null, agentOptions: AgentOptions) => unknown;
  const target = kubeConfig as unknown as { createDispatcher: Make };
  const make = target.createDispatcher.bind(kubeConfig);
  let kept: { key: string; dispatcher: unknown } | undefined;
  target.createDispatcher = (cluster, agentOptions) => {
    const key = JSON.stringify(kubeConfig.createDispatcherOptions(cluster, agentOptions));
    if (kept?.key !== key) {
      void (kept?.dispatcher as { close?: () => Promise<void> } | undefined)?.close?.().catch(() => {});
      kept = { key, dispatcher: make(cluster, agentOptions) };
    }
    return kept.dispatcher;
  };
}

/**
 * Sends the object as written (JSON) instead of the client's serialization, which keeps only the
 * fields its models know and so drops a template's typo (or a field newer than the client)
 * without a word; the server's Strict field validation then names it.
 */
function asIs(body: object): ReturnType<typeof setHeaderOptions> {
  // Per-call middleware is the client's Observable kind (its rxjs stub: toPromise, pipe).
  const observable = <T>(value: T) => ({
    toPromise: () => Promise.resolve(value),
    pipe: <U>(f: (v: T) => U) => observable(f(value)),
  });
  return {
    middleware: [
      {
        pre: (context: RequestContext) => {
          context.setBody(JSON.stringify(body));
          return observable(context);
        },
        post: (context: ResponseContext) => observable(context),
      },
    ],
    middlewareMergeStrategy: 'append',
  } as unknown as ReturnType<typeof setHeaderOptions>;
}

/** When an Event last happened (epoch ms): series, lastTimestamp, eventTime, creation. */
function eventTime(ev: CoreV1Event): number {
  for (const t of [ev.series?.lastObservedTime, ev.lastTimestamp, ev.eventTime, ev.metadata?.creationTimestamp]) {
    const ms = t === undefined ? Number.NaN : new Date(t).getTime();
    if (!Number.isNaN(ms)) return ms;
  }
  return 0;
}
