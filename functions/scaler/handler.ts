/**
 * Scaler Lambda (EventBridge schedule). Thin: configuration at cold start, ports built once per
 * container, then the tick loop of scaler.ts until the invocation's budget is spent.
 */
import middy from '@middy/core';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { createCluster } from '../adapters/kubernetes/cluster.js';
import { loadTemplate } from '../adapters/kubernetes/templates.js';
import { DynamoLedgerStore } from '../adapters/dynamodb/ledger-store.js';
import { DynamoLimiterStore } from '../adapters/dynamodb/limiter-store.js';
import { createEventsQueue } from '../adapters/sqs/events-queue.js';
import { loadScalerConfig, type ScalerConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { createScalerMetrics } from './metrics.js';
import { eventSource, jobFactory } from './ports.js';
import { run, type ScalerPorts, type ScalerSettings, type TickReport } from './scaler.js';

const log = createLogger('scaler');
/** Validated once: a bad variable fails the cold start with a message naming it. */
const config: ScalerConfig = loadScalerConfig();

/** Margin kept from the Lambda timeout for the last tick to finish. */
const SAFETY_MS = 8_000;

export function scalerSettings(c: ScalerConfig): ScalerSettings {
  return {
    queues: c.queues,
    limits: Object.fromEntries(
      Object.entries(c.queueSettings).map(([q, s]) => [q, { minAgents: s.minAgents, maxAgents: s.maxAgents }]),
    ),
    intentLeaseMs: c.intentLeaseSeconds * 1000,
  };
}

export async function createPorts(c: ScalerConfig): Promise<ScalerPorts> {
  // Templates are loaded (and validated) once, before anything is reserved.
  const templates = Object.fromEntries(
    await Promise.all(Object.entries(c.queueSettings).map(async ([q, s]) => [q, await loadTemplate(s.jobTemplate)] as const)),
  );
  return {
    events: eventSource(createEventsQueue(c.eventsQueueUrl)),
    ledger: new DynamoLedgerStore({ tableName: c.ledgerTable, retentionDays: c.ledgerRetentionDays }),
    limiter: new DynamoLimiterStore({ tableName: c.ledgerTable }),
    cluster: await createCluster(c.cluster, c.namespace),
    jobs: jobFactory({
      namespace: c.namespace,
      ttlSecondsAfterFinished: c.jobTtlSecondsAfterFinished,
      activeDeadlineSeconds: c.jobActiveDeadlineSeconds,
      templateFor: (queue) => {
        const template = templates[queue];
        if (!template) throw new Error(`queue ${JSON.stringify(queue)} is not served (QUEUES)`);
        return template;
      },
    }),
    log,
    metrics: createScalerMetrics(),
    now: Date.now,
  };
}

let ports: Promise<ScalerPorts> | undefined;

export interface ScalerResult {
  readonly ticks: number;
  readonly eventsReceived: number;
  readonly agentsRequested: number;
  readonly errors: number;
}

function summarise(reports: readonly TickReport[]): ScalerResult {
  return {
    ticks: reports.length,
    eventsReceived: reports.reduce((n, r) => n + r.drain.received, 0),
    agentsRequested: reports.reduce((n, r) => n + r.decisions.reduce((m, d) => m + d.count, 0), 0),
    errors: reports.reduce((n, r) => n + r.errors.length, 0),
  };
}

async function scale(_event: ScheduledEvent | Record<string, never>, context: Context): Promise<ScalerResult> {
  ports ??= createPorts(config).catch((e: unknown) => {
    ports = undefined; // retry the wiring on the next invocation
    throw e;
  });
  const remaining = context?.getRemainingTimeInMillis?.() ?? config.budgetSeconds * 1000 + SAFETY_MS;
  const budgetMs = Math.max(0, Math.min(config.budgetSeconds * 1000, remaining - SAFETY_MS));
  const reports = await run(await ports, scalerSettings(config), { budgetMs, pollSeconds: config.pollSeconds });
  const result = summarise(reports);
  log.info('scaler invocation done', { ...result });
  return result;
}

export const handler = middy(scale);
