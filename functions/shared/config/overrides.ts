/**
 * QUEUE_OVERRIDES: per-queue limits, template and agents, parsed by a zod schema; and the
 * effective settings of every served queue (defaults with overrides applied).
 */
import * as z from 'zod/mini';
import { PROVIDERS } from '../../core/job-event.js';
import { providerOfTemplate } from '../../core/providers/registry.js';
import { defaultAgentTags, defaultRunnerLabels, defaultRunnerTags, type QueueAgents } from '../../core/routing.js';
import { ConfigError, fail, required, type Source } from './read.js';

export interface QueueSettings {
  readonly minAgents: number;
  readonly maxAgents: number;
  readonly jobTemplate: string;
  /** The queue's declared agents (the same object routing uses). */
  readonly agents: QueueAgents;
  /** The queue's own GitLab runner token Secret (replaces the template's CI_SERVER_TOKEN Secret). */
  readonly runnerTokenSecret?: string;
}

/** A Kubernetes object name (DNS-1123 subdomain). */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** A label, tag or `key=value` element: printable, no comma (agents take them comma-separated). */
const ELEMENT = /^[^,\s][^,]{0,254}$/;

const LIST = 'must be a non-empty array of at most 64 strings';
const badElement = (issue: { input?: unknown }) => `is not a valid element: ${JSON.stringify(issue.input)}`;
const SECRET = 'must be a Kubernetes Secret name';
const TEMPLATE = 'must be a non-empty string';

function elements(check: (s: string) => boolean = () => true) {
  const element = z
    .string({ error: badElement })
    .check(z.refine((s) => ELEMENT.test(s) && check(s), { error: badElement }));
  return z.optional(
    z.array(element, { error: LIST }).check(z.minLength(1, { error: LIST }), z.maxLength(64, { error: LIST })),
  );
}

function count(min: number) {
  const error = `must be an integer >= ${min}`;
  return z.optional(z.custom<number>((v) => Number.isSafeInteger(v) && (v as number) >= min, { error }));
}

/** One queue's override; the order of the keys is the order its problems are reported in. */
const OVERRIDE = z.strictObject(
  {
    provider: z.optional(z.enum(PROVIDERS, { error: `must be one of ${PROVIDERS.join(', ')}` })),
    jobTemplate: z.optional(z.string({ error: TEMPLATE }).check(z.minLength(1, { error: TEMPLATE }))),
    runUntagged: z.optional(z.boolean({ error: 'must be a boolean' })),
    runnerTokenSecret: z.optional(z.string({ error: SECRET }).check(z.regex(SECRET_NAME, { error: SECRET }))),
    agentTags: elements((t) => t.indexOf('=') > 0),
    runnerLabels: elements(),
    runnerTags: elements(),
    minAgents: count(0),
    maxAgents: count(1),
  },
  { error: 'must be an object' },
);

type QueueOverride = z.infer<typeof OVERRIDE>;

/** One line per problem zod found in a queue's override: where (a dotted path) and what; unknown settings first. */
function problems(queue: string, error: z.core.$ZodError): string[] {
  const rank = (issue: z.core.$ZodIssue) => (issue.code === 'unrecognized_keys' ? 0 : 1);
  return [...error.issues]
    .sort((a, b) => rank(a) - rank(b))
    .flatMap((issue) => {
      const where = [queue, ...issue.path.map(String)];
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => `at "${[...where, key].join('.')}": is not a known setting`);
      }
      return [`at "${where.join('.')}": ${issue.message}`];
    });
}

const unique = (items: readonly string[] | undefined) => (items ? [...new Set(items)] : undefined);

export function agentsOf(queue: string, o: QueueOverride, template: string): QueueAgents {
  const provider = o.provider ?? providerOfTemplate(template);
  return {
    queue,
    ...(provider ? { provider } : {}),
    agentTags: o.agentTags ?? defaultAgentTags(queue),
    runnerLabels: o.runnerLabels ?? defaultRunnerLabels(queue),
    runnerTags: o.runnerTags ?? defaultRunnerTags(queue),
    runUntagged: o.runUntagged ?? false,
  };
}

/**
 * The overrides of each queue, in the order of QUEUES (then any other named), each checked by the
 * schema. `queues` undefined: QUEUES itself is invalid, so which names are unknown cannot be said.
 */
function parse(env: Source, queues: readonly string[] | undefined): Record<string, QueueOverride> {
  const expected = env.spec('QUEUE_OVERRIDES').expected;
  let json: unknown;
  try {
    json = JSON.parse(required(env, 'QUEUE_OVERRIDES'));
  } catch {
    return fail(env, 'QUEUE_OVERRIDES', `valid JSON: ${expected}`);
  }
  const head = `QUEUE_OVERRIDES must be ${expected}; `;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError('QUEUE_OVERRIDES', `${head}at "": must be an object`);
  }
  const given = json as Record<string, unknown>;
  const lines: string[] = [];
  const unknown = queues ? Object.keys(given).filter((q) => !queues.includes(q)) : [];
  if (unknown.length > 0) {
    lines.push(`QUEUE_OVERRIDES names queue(s) not in QUEUES: ${unknown.map((q) => JSON.stringify(q)).join(', ')}`);
  }
  const found: string[] = [];
  const overrides: Record<string, QueueOverride> = {};
  const order = [...(queues ?? []).filter((q) => Object.hasOwn(given, q)), ...unknown];
  for (const queue of order) {
    const parsed = OVERRIDE.safeParse(given[queue]);
    if (!parsed.success) found.push(...problems(queue, parsed.error));
    else {
      const o = parsed.data;
      overrides[queue] = {
        ...o,
        ...(o.agentTags ? { agentTags: unique(o.agentTags) } : {}),
        ...(o.runnerLabels ? { runnerLabels: unique(o.runnerLabels) } : {}),
        ...(o.runnerTags ? { runnerTags: unique(o.runnerTags) } : {}),
      };
    }
  }
  const [first, ...more] = found;
  if (first !== undefined) lines.push(`${head}${first}`, ...more.map((p) => `QUEUE_OVERRIDES ${p}`));
  if (lines.length > 0) throw new ConfigError('QUEUE_OVERRIDES', lines.join('\n'));
  return overrides;
}

/** The effective settings of every served queue. */
export function queueSettings(
  env: Source,
  queues: readonly string[] | undefined,
  defaults: QueueSettings,
): Record<string, QueueSettings> {
  const overrides = parse(env, queues);
  const settings: Record<string, QueueSettings> = {};
  for (const queue of queues ?? []) {
    const o = Object.hasOwn(overrides, queue) ? (overrides[queue] ?? {}) : {};
    const template = o.jobTemplate ?? defaults.jobTemplate;
    const s: QueueSettings = {
      minAgents: o.minAgents ?? defaults.minAgents,
      maxAgents: o.maxAgents ?? defaults.maxAgents,
      jobTemplate: template,
      agents: agentsOf(queue, o, template),
      ...(o.runnerTokenSecret ? { runnerTokenSecret: o.runnerTokenSecret } : {}),
    };
    if (s.maxAgents < s.minAgents) {
      throw new ConfigError(
        'QUEUE_OVERRIDES',
        `QUEUE_OVERRIDES: queue "${queue}" has maxAgents ${s.maxAgents} below minAgents ${s.minAgents}`,
      );
    }
    settings[queue] = s;
  }
  return settings;
}
