/** Builds the scaler's ports from configuration: the adapters for AWS and the cluster. */

import type { V1Job } from '@kubernetes/client-node';
import { DynamoArrivalHistoryStore } from '../adapters/dynamodb/arrival-history-store.js';
import { DynamoLedgerStore } from '../adapters/dynamodb/ledger-store.js';
import { DynamoLimiterStore } from '../adapters/dynamodb/limiter-store.js';
import { createCluster } from '../adapters/kubernetes/cluster.js';
import { jobFactory } from '../adapters/kubernetes/job-factory.js';
import { loadTemplate } from '../adapters/kubernetes/templates.js';
import { createEventsQueue, eventSource } from '../adapters/sqs/events-queue.js';
import { QueueBackoff } from '../core/backoff.js';
import { ExitedAgents } from '../core/decision.js';
import { WarmPoolTracker } from '../core/warm-pool.js';
import type { ScalerConfig } from '../shared/config.js';
import { createScalerMetrics } from './metrics.js';
import type { JobFactory, ScalerLog, ScalerPorts, ScalerSettings } from './ports.js';
import { createProviderReconciler } from './provider-reconcile.js';
import { claimedQueues, wireProviders } from './providers.js';
import { learnedWarmPool } from './warm-learning.js';

export function scalerSettings(c: ScalerConfig): ScalerSettings {
  return {
    queues: c.queues,
    limits: Object.fromEntries(
      Object.entries(c.queueSettings).map(([q, s]) => [q, { minAgents: s.minAgents, maxAgents: s.maxAgents }]),
    ),
    intentLeaseMs: c.intentLeaseSeconds * 1000,
    // An agent stopped just after it took a CI job has as long as its Job would give it.
    stopGraceSeconds: c.jobActiveDeadlineSeconds,
  };
}

/** Our Kubernetes Jobs, built from each queue's template. */
function agentJobs(c: ScalerConfig, templates: Readonly<Record<string, V1Job>>): JobFactory {
  return jobFactory({
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
  });
}

export async function createPorts(c: ScalerConfig, log: ScalerLog): Promise<ScalerPorts> {
  // Templates are loaded (and validated) once, before anything is reserved.
  const templates = Object.fromEntries(
    await Promise.all(
      Object.entries(c.queueSettings).map(async ([q, s]) => [q, await loadTemplate(s.jobTemplate)] as const),
    ),
  );
  // A provider refuses a configuration it cannot serve before the cluster is reached.
  const claimed = claimedQueues(c, templates);
  const cluster = await createCluster(c.cluster, c.namespace);
  const { routers, hooks, sources, queueProvider } = wireProviders({ config: c, templates, cluster, log }, claimed);
  return {
    ...(sources.length > 0
      ? { providers: createProviderReconciler({ sources, periodMs: c.providerReconcileSeconds * 1000 }) }
      : {}),
    events: eventSource(createEventsQueue(c.eventsQueueUrl)),
    routers,
    ledger: new DynamoLedgerStore({
      tableName: c.ledgerTable,
      retentionDays: c.ledgerRetentionDays,
      openMaxAgeHours: c.ledgerOpenMaxAgeHours,
    }),
    limiter: new DynamoLimiterStore({ tableName: c.ledgerTable }),
    cluster,
    hooks,
    queueProvider,
    backoff: new QueueBackoff({
      baseMs: c.backoff.baseSeconds * 1000,
      maxMs: c.backoff.maxSeconds * 1000,
      unschedulableMs: c.backoff.unschedulableSeconds * 1000,
    }),
    jobs: agentJobs(c, templates),
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
