/** Builds the scaler's ports from configuration: the adapters for AWS and the cluster. */

import { createBuildkiteBuildsApi } from '../adapters/buildkite/builds-api.js';
import { DynamoArrivalHistoryStore } from '../adapters/dynamodb/arrival-history-store.js';
import { DynamoLedgerStore } from '../adapters/dynamodb/ledger-store.js';
import { DynamoLimiterStore } from '../adapters/dynamodb/limiter-store.js';
import { DynamoRouteStore } from '../adapters/dynamodb/route-store.js';
import { JitRunners, usesJitConfig } from '../adapters/github/jit-runners.js';
import { createRunnersApi } from '../adapters/github/runners-api.js';
import { createGitlabJobsApi } from '../adapters/gitlab/jobs-api.js';
import { createCluster } from '../adapters/kubernetes/cluster.js';
import { jobFactory } from '../adapters/kubernetes/job-factory.js';
import { loadTemplate } from '../adapters/kubernetes/templates.js';
import { SecretStore } from '../adapters/secrets/secret-store.js';
import { createEventsQueue, eventSource } from '../adapters/sqs/events-queue.js';
import { QueueBackoff } from '../core/backoff.js';
import { ExitedAgents } from '../core/decision.js';
import { defaultRunnerLabels } from '../core/routing.js';
import { WarmPoolTracker } from '../core/warm-pool.js';
import { ConfigError, type ScalerConfig } from '../shared/config.js';
import { createGitlabRouter } from './gitlab-routes.js';
import { createScalerMetrics } from './metrics.js';
import type { ScalerLog, ScalerPorts, ScalerSettings } from './ports.js';
import {
  buildkiteScheduled,
  createProviderReconciler,
  githubRedeliveries,
  gitlabPending,
  type RecoverySource,
} from './provider-reconcile.js';
import { learnedWarmPool } from './warm-learning.js';

export function scalerSettings(c: ScalerConfig): ScalerSettings {
  return {
    queues: c.queues,
    limits: Object.fromEntries(
      Object.entries(c.queueSettings).map(([q, s]) => [q, { minAgents: s.minAgents, maxAgents: s.maxAgents }]),
    ),
    intentLeaseMs: c.intentLeaseSeconds * 1000,
  };
}

export async function createPorts(c: ScalerConfig, log: ScalerLog): Promise<ScalerPorts> {
  // Templates are loaded (and validated) once, before anything is reserved.
  const templates = Object.fromEntries(
    await Promise.all(
      Object.entries(c.queueSettings).map(async ([q, s]) => [q, await loadTemplate(s.jobTemplate)] as const),
    ),
  );
  const jitQueues = new Set(Object.keys(templates).filter((q) => templates[q] && usesJitConfig(templates[q])));
  if (jitQueues.size > 0 && !c.github) {
    throw new ConfigError(
      'GITHUB_APP_ID',
      `GITHUB_APP_ID, GITHUB_RUNNER_OWNER and GITHUB_APP_PRIVATE_KEY(_PARAMETER) must be set: the Job template of queue(s) ${[
        ...jitQueues,
      ]
        .map((q) => JSON.stringify(q))
        .join(', ')} mounts the jitconfig volume (just-in-time GitHub runners)`,
    );
  }
  const cluster = await createCluster(c.cluster, c.namespace);
  const github = c.github;
  const secrets = github ? new SecretStore({ githubAppKey: github.privateKey }) : undefined;
  // One client (one installation token) for the JIT runners and the redeliveries.
  const runnersApi =
    github && secrets
      ? createRunnersApi({
          appId: github.appId,
          privateKey: () => secrets.get('githubAppKey'),
          owner: github.owner,
          apiUrl: github.apiUrl,
        })
      : undefined;
  const hooks =
    github && runnersApi && jitQueues.size > 0
      ? new JitRunners({
          api: runnersApi,
          cluster,
          runnerGroupId: github.runnerGroupId,
          isJitQueue: (queue) => jitQueues.has(queue),
          labelsFor: (queue) => c.queueSettings[queue]?.agents.runnerLabels ?? defaultRunnerLabels(queue),
          deployment: c.ledgerTable,
          log,
        })
      : undefined;
  const gitlabCredentials = new SecretStore({ gitlabApi: c.gitlabApi.token });
  const api = gitlabCredentials.enabled('gitlabApi')
    ? createGitlabJobsApi({
        url: c.gitlabApi.url,
        token: () => gitlabCredentials.get('gitlabApi'),
        refreshToken: () => gitlabCredentials.refresh('gitlabApi'),
      })
    : undefined;
  // Provider reconcile (PROVIDER_RECONCILE_SECONDS): each provider with credentials.
  const sources: RecoverySource[] = [];
  if (c.providerReconcileSeconds > 0) {
    if (github?.webhookId !== undefined && runnersApi) {
      sources.push(githubRedeliveries({ api: runnersApi, hookId: github.webhookId }));
    }
    if (api && c.gitlabProjects && c.gitlabProjects.length > 0) {
      sources.push(gitlabPending({ api, projects: c.gitlabProjects, routing: c.routing }));
    }
    const bk = c.buildkiteApi;
    if (bk) {
      const bkToken = new SecretStore({ buildkiteApi: bk.token });
      sources.push(
        buildkiteScheduled({
          api: createBuildkiteBuildsApi({
            url: bk.url,
            organization: bk.organization,
            token: () => bkToken.get('buildkiteApi'),
          }),
          routing: c.routing,
          ...(bk.clusters ? { clusters: bk.clusters } : {}),
        }),
      );
    }
  }
  return {
    ...(sources.length > 0
      ? { providers: createProviderReconciler({ sources, periodMs: c.providerReconcileSeconds * 1000 }) }
      : {}),
    events: eventSource(createEventsQueue(c.eventsQueueUrl)),
    router: createGitlabRouter({
      api,
      store: new DynamoRouteStore({
        tableName: c.ledgerTable,
        retentionSeconds: (c.ledgerRetentionDays * 24 + c.ledgerOpenMaxAgeHours) * 3600,
      }),
      routing: c.routing,
      now: Date.now,
    }),
    ledger: new DynamoLedgerStore({
      tableName: c.ledgerTable,
      retentionDays: c.ledgerRetentionDays,
      openMaxAgeHours: c.ledgerOpenMaxAgeHours,
    }),
    limiter: new DynamoLimiterStore({ tableName: c.ledgerTable }),
    cluster,
    ...(hooks ? { hooks } : {}),
    backoff: new QueueBackoff({
      baseMs: c.backoff.baseSeconds * 1000,
      maxMs: c.backoff.maxSeconds * 1000,
      unschedulableMs: c.backoff.unschedulableSeconds * 1000,
    }),
    jobs: jobFactory({
      namespace: c.namespace,
      ttlSecondsAfterFinished: c.jobTtlSecondsAfterFinished,
      activeDeadlineSeconds: c.jobActiveDeadlineSeconds,
      deployment: c.ledgerTable,
      agentsFor: (queue) => c.queueSettings[queue]?.agents,
      runnerTokenSecretFor: (queue) => c.queueSettings[queue]?.runnerTokenSecret,
      templateFor: (queue) => {
        const template = templates[queue];
        if (!template) throw new Error(`queue ${JSON.stringify(queue)} is not served (QUEUES)`);
        return template;
      },
    }),
    log,
    metrics: createScalerMetrics(),
    now: Date.now,
    // Built once per container: its measurements carry over from one invocation to the next.
    ...(c.warmPool === 'adaptive' ? { warmPool: new WarmPoolTracker() } : {}),
    ...(c.warmPool === 'learned' ? learnedWarmPool(new DynamoArrivalHistoryStore({ tableName: c.ledgerTable })) : {}),
    // Also per container: an exit seen in one invocation is explained by an event of the next.
    exited: new ExitedAgents(),
  };
}
