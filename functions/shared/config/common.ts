/** What the webhook and the scaler both read: the events queue, the served queues and their routing. */
import { providerOfTemplate } from '../../core/providers/registry.js';
import type { Routing } from '../../core/routing.js';
import { agentsOf, type QueueSettings, queueSettings } from './overrides.js';
import { choice, fail, int, type Problems, queueList, queueName, required, type Source, url } from './read.js';
import type { VariableName } from './registry.js';

export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

export interface CommonConfig {
  readonly eventsQueueUrl: string;
  readonly queues: readonly string[];
  readonly logLevel: LogLevel;
  /** What each served queue's agents carry, and the Buildkite default queue. */
  readonly routing: Routing;
}

export interface Base extends CommonConfig {
  readonly queueSettings: Readonly<Record<string, QueueSettings>>;
  readonly defaults: QueueSettings;
}

export function jobTemplate(env: Source, name: VariableName): string {
  const value = required(env, name);
  if (providerOfTemplate(value) !== undefined || value.endsWith('.yaml') || value.endsWith('.yml')) {
    return value;
  }
  return fail(env, name);
}

export function logLevel(env: Source): LogLevel {
  return choice<LogLevel>(env, 'LOG_LEVEL');
}

/** `limits`: read MIN_AGENTS/MAX_AGENTS (the scaler); the webhook needs only the routing. */
export function common(env: Source, limits: boolean, p: Problems): Base {
  const queues = p.take<string[] | undefined>(() => queueList(env), undefined);
  const minAgents = limits ? p.take(() => int(env, 'MIN_AGENTS'), Number.NaN) : 0;
  const maxAgents = limits
    ? p.take(() => int(env, 'MAX_AGENTS', { MIN_AGENTS: minAgents }), Number.NaN)
    : Number.MAX_SAFE_INTEGER;
  const template = p.take(() => jobTemplate(env, 'JOB_TEMPLATE'), 'buildkite');
  const defaults: QueueSettings = {
    minAgents,
    maxAgents,
    jobTemplate: template,
    agents: agentsOf('default', {}, template),
  };
  const settings = p.take(() => queueSettings(env, queues, defaults), {});
  const buildkiteDefaultQueue = p.take(() => queueName(env, 'BUILDKITE_DEFAULT_QUEUE'), 'default');
  return {
    eventsQueueUrl: p.take(() => url(env, 'EVENTS_QUEUE_URL'), ''),
    queues: queues ?? [],
    logLevel: p.take(() => logLevel(env), 'INFO'),
    routing: {
      queues: (queues ?? []).map((q) => settings[q]?.agents ?? agentsOf(q, {}, template)),
      buildkiteDefaultQueue,
    },
    queueSettings: settings,
    defaults,
  };
}
