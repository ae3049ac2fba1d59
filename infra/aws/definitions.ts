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
      if (!(name in params)) throw new Error(`Unknown parameter ${name} in infra/aws`);
      return params[name]!;
    };
    if (whole) return lookup(whole[1]!);
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

/** The events queue and DLQ as deployed (infra/aws/queues.yml), with this stage's parameters. */
export function queueDefinitions(stage?: string, root = PROJECT_ROOT): QueueDefinitions {
  const params = serverlessParams(stage, root);
  const doc = substitute(parse(readFileSync(join(root, 'infra/aws/queues.yml'), 'utf8')), params) as {
    Resources: Record<string, { Properties: Record<string, any> }>;
  };
  const events = doc.Resources.EventsQueue!.Properties;
  const dlq = doc.Resources.EventsDeadLetterQueue!.Properties;
  return {
    events: {
      visibilityTimeoutSeconds: Number(events.VisibilityTimeout),
      messageRetentionSeconds: Number(events.MessageRetentionPeriod),
      maxReceiveCount: Number(events.RedrivePolicy.maxReceiveCount),
    },
    deadLetter: { messageRetentionSeconds: Number(dlq.MessageRetentionPeriod) },
  };
}
