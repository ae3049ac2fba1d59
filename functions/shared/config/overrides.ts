/**
 * QUEUE_OVERRIDES: per-queue limits, template and agents, parsed by a zod schema; and the
 * effective settings of every served queue (defaults with overrides applied).
 */
import * as z from 'zod/mini';
import { PROVIDERS, type Provider } from '../../core/job-event.js';
import { defaultAgentTags, defaultRunnerLabels, defaultRunnerTags, type QueueAgents } from '../../core/routing.js';
import { ConfigError, type Env, fail, required } from './read.js';
import { spec } from './registry.js';

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
    z.pipe(
      z.array(element, { error: LIST }).check(z.minLength(1, { error: LIST }), z.maxLength(64, { error: LIST })),
      z.transform((items: string[]) => [...new Set(items)]),
    ),
  );
}

function count(min: number) {
  const error = `must be an integer >= ${min}`;
  return z.optional(z.int({ error }).check(z.gte(min, { error })));
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

const OVERRIDES = z.record(z.string(), OVERRIDE, { error: 'must be an object' });

type QueueOverride = z.infer<typeof OVERRIDE>;

/**
 * One line per problem zod found: where (a dotted path) and what. Ordered as the queues are in
 * QUEUES, and within a queue unknown settings first, as before the schema.
 */
function problems(error: z.core.$ZodError, queues: readonly string[]): string[] {
  const rank = (issue: z.core.$ZodIssue) => {
    const queue = queues.indexOf(String(issue.path[0]));
    return (queue < 0 ? queues.length : queue) * 2 + (issue.code === 'unrecognized_keys' ? 0 : 1);
  };
  return [...error.issues]
    .sort((a, b) => rank(a) - rank(b))
    .flatMap((issue) => {
      const where = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => `at "${[...where, key].join('.')}": is not a known setting`);
      }
      return [`at "${where.join('.')}": ${issue.message}`];
    });
}

/** The provider a template name implies (a custom template path implies none). */
function providerOfTemplate(template: string): Provider | undefined {
  return (PROVIDERS as readonly string[]).includes(template) ? (template as Provider) : undefined;
}

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

/** `queues` undefined: QUEUES itself is invalid, so which names are unknown cannot be said. */
function parse(env: Env, queues: readonly string[] | undefined): Record<string, QueueOverride> {
  const expected = spec('QUEUE_OVERRIDES').expected;
  let json: unknown;
  try {
    json = JSON.parse(required(env, 'QUEUE_OVERRIDES'));
  } catch {
    return fail(env, 'QUEUE_OVERRIDES', `valid JSON: ${expected}`);
  }
  const lines: string[] = [];
  if (queues && typeof json === 'object' && json !== null && !Array.isArray(json)) {
    const unknown = Object.keys(json).filter((q) => !queues.includes(q));
    if (unknown.length > 0) {
      lines.push(`QUEUE_OVERRIDES names queue(s) not in QUEUES: ${unknown.map((q) => JSON.stringify(q)).join(', ')}`);
    }
  }
  const parsed = OVERRIDES.safeParse(json);
  if (!parsed.success) {
    const [first, ...more] = problems(parsed.error, queues ?? []);
    lines.push(`QUEUE_OVERRIDES must be ${expected}; ${first}`, ...more.map((p) => `QUEUE_OVERRIDES ${p}`));
  }
  if (lines.length > 0 || !parsed.success) throw new ConfigError('QUEUE_OVERRIDES', lines.join('\n'));
  return parsed.data;
}

/** The effective settings of every served queue. */
export function queueSettings(
  env: Env,
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
