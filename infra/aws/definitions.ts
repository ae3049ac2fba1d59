/**
 * The deployment's own definitions, read from the same files serverless.yml deploys, for the
 * local stack and the tests: the stage parameters (serverless.yml `params`) and the events queue
 * and dead-letter queue settings (infra/aws/queues.yml with `${param:...}` substituted). So a
 * local run creates its queues exactly as AWS would (visibility timeout, redrive, retention).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

type Params = Record<string, string | number | boolean>;

/** serverless.yml `params.default`, overlaid with `params.<stage>` when given. */
export function serverlessParams(stage?: string, root = PROJECT_ROOT): Params {
  const doc = parse(readFileSync(join(root, 'serverless.yml'), 'utf8')) as { params: Record<string, Params> };
  return { ...doc.params.default, ...(stage ? doc.params[stage] : {}) };
}

const PARAM = /\$\{param:([A-Za-z0-9]+)\}/g;

/** Replaces `${param:x}`; a value that is exactly one variable keeps the parameter's type. */
function substitute(value: unknown, params: Params): unknown {
  if (typeof value === 'string') {
    const whole = /^\$\{param:([A-Za-z0-9]+)\}$/.exec(value);
    const lookup = (name: string) => {
      const found = params[name];
      if (found === undefined) throw new Error(`Unknown parameter ${name} in infra/aws`);
      return found;
    };
    if (whole?.[1]) return lookup(whole[1]);
    return value.replace(PARAM, (_, name: string) => String(lookup(name)));
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, params));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, params)]));
  }
  return value;
}

export interface QueueDefinitions {
  readonly events: {
    readonly visibilityTimeoutSeconds: number;
    readonly messageRetentionSeconds: number;
    readonly maxReceiveCount: number;
  };
  readonly deadLetter: { readonly messageRetentionSeconds: number };
}

/** The part of infra/aws/queues.yml the local stack and the tests read (after substitution). */
const QueuesDocument = z.object({
  Resources: z.object({
    EventsQueue: z.object({
      Properties: z.object({
        VisibilityTimeout: z.coerce.number(),
        MessageRetentionPeriod: z.coerce.number(),
        RedrivePolicy: z.object({ maxReceiveCount: z.coerce.number() }),
      }),
    }),
    EventsDeadLetterQueue: z.object({ Properties: z.object({ MessageRetentionPeriod: z.coerce.number() }) }),
  }),
});

/** The events queue and DLQ as deployed (infra/aws/queues.yml), with this stage's parameters. */
export function queueDefinitions(stage?: string, root = PROJECT_ROOT): QueueDefinitions {
  const params = serverlessParams(stage, root);
  const doc = QueuesDocument.parse(substitute(parse(readFileSync(join(root, 'infra/aws/queues.yml'), 'utf8')), params));
  const events = doc.Resources.EventsQueue.Properties;
  const dlq = doc.Resources.EventsDeadLetterQueue.Properties;
  return {
    events: {
      visibilityTimeoutSeconds: events.VisibilityTimeout,
      messageRetentionSeconds: events.MessageRetentionPeriod,
      maxReceiveCount: events.RedrivePolicy.maxReceiveCount,
    },
    deadLetter: { messageRetentionSeconds: dlq.MessageRetentionPeriod },
  };
}
