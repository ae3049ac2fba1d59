/**
 * Scaler Lambda (EventBridge schedule). Thin: configuration at cold start, ports built once per
 * container, then the tick loop of loop.ts until the invocation's budget is spent.
 */
import middy from '@middy/core';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { loadScalerConfig, type ScalerConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { run } from './loop.js';
import type { ScalerPorts } from './ports.js';
import type { TickReport } from './scaler.js';
import { createPorts, scalerSettings } from './wiring.js';

/** Validated once: a bad variable fails the cold start with a message naming it. */
const config: ScalerConfig = loadScalerConfig();
const log = createLogger('scaler', config.logLevel);

/** Margin kept from the Lambda timeout for the last tick to finish. */
const SAFETY_MS = 8_000;

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
  ports ??= createPorts(config, log).catch((e: unknown) => {
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
