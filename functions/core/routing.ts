/**
 * Which queue's agents could take a CI job: each provider's own matching rule, applied to what
 * each queue declares its agents carry. Pure: no I/O.
 *
 * One source: the same QueueAgents (built from QUEUE_OVERRIDES, functions/shared/config.ts)
 * decide here which jobs count for a queue AND are injected into the agents the queue starts
 * (functions/core/agent-job.ts: BUILDKITE_AGENT_TAGS, CI_AUTOSCALER_RUNNER_LABELS), so the
 * counted jobs and the started agents cannot disagree. GitLab runner tags live server-side
 * with the runner authentication token: the queue's token must be created with exactly the
 * declared tags (README).
 *
 * The rules:
 *  - Buildkite: every `key=value` rule of the job's `agent_query_rules` is satisfied by one of
 *    the agent's tags with that key; a `*` in the rule's value matches any run of characters
 *    (`os=*`: any agent that has an `os` tag). A job without a `queue=` rule targets the
 *    default queue (BUILDKITE_DEFAULT_QUEUE).
 *  - GitHub: every `runs-on` label is one of the runner's labels, case-insensitively.
 *  - GitLab: the job's tags are a subset of the runner's tags (case-insensitively); an untagged job only goes to a
 *    runner that runs untagged jobs.
 * Served queues are tried in QUEUES order; the first whose agents could take the job wins.
 */
import type { Provider } from './job-event.js';

export interface QueueAgents {
  readonly queue: string;
  /** The provider whose agents the queue starts; undefined: a custom template serving any. */
  readonly provider?: Provider;
  /** Buildkite agent tags, `key=value` (default `queue=<name>`). */
  readonly agentTags: readonly string[];
  /** GitHub runner labels (default self-hosted, linux, x64, <name>). */
  readonly runnerLabels: readonly string[];
  /** GitLab runner tags (default <name>). */
  readonly runnerTags: readonly string[];
  /** Whether the GitLab runner takes jobs without tags (default false). */
  readonly runUntagged: boolean;
}

export interface Routing {
  /** Served queues in precedence order (QUEUES). */
  readonly queues: readonly QueueAgents[];
  /** Queue of a Buildkite job without a `queue=` rule. */
  readonly buildkiteDefaultQueue: string;
}

export const DEFAULT_BUILDKITE_QUEUE = 'default';

export function defaultAgentTags(queue: string): string[] {
  return [`queue=${queue}`];
}

export function defaultRunnerLabels(queue: string): string[] {
  return ['self-hosted', 'linux', 'x64', queue];
}

export function defaultRunnerTags(queue: string): string[] {
  return [queue];
}

/** A queue's agents with every declaration at its default. */
export function defaultQueueAgents(queue: string, provider?: Provider): QueueAgents {
  return {
    queue,
    ...(provider ? { provider } : {}),
    agentTags: defaultAgentTags(queue),
    runnerLabels: defaultRunnerLabels(queue),
    runnerTags: defaultRunnerTags(queue),
    runUntagged: false,
  };
}

/** Routing with defaults for every queue (any provider): tests and callers without config. */
export function defaultRouting(queues: readonly string[]): Routing {
  return { queues: queues.map((q) => defaultQueueAgents(q)), buildkiteDefaultQueue: DEFAULT_BUILDKITE_QUEUE };
}

export type RouteResult = { readonly queue: string } | { readonly unmet: string };

const MAX_REASON = 480;

function unservedBecause(provider: Provider, queues: readonly QueueAgents[], why: (q: QueueAgents) => string): string {
  const candidates = queues.filter((q) => q.provider === undefined || q.provider === provider);
  if (candidates.length === 0) return `no queue served here runs ${provider} agents`;
  const text = `no queue's agents can take it: ${candidates.map((q) => `${q.queue}: ${why(q)}`).join('; ')}`;
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON - 3)}...` : text;
}

/**
 * The first served queue (QUEUES order) serving `provider` whose agents meet the job's needs
 * (`unmet` says what a queue's agents lack, undefined when nothing): a provider's routing rule
 * is this with its own `unmet` (its descriptor's `route`).
 */
export function routeBy(
  provider: Provider,
  queues: readonly QueueAgents[],
  unmet: (q: QueueAgents) => string | undefined,
): RouteResult {
  for (const q of queues) {
    if (q.provider !== undefined && q.provider !== provider) continue;
    if (unmet(q) === undefined) return { queue: q.queue };
  }
  return { unmet: unservedBecause(provider, queues, (q) => unmet(q) ?? '') };
}

// --- Buildkite ---------------------------------------------------------------------------

/** `value` matches `pattern`, where `*` in the pattern matches any run of characters. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[\\s\\S]*')}$`).test(value);
}

function splitTag(tag: string): [string, string] {
  const eq = tag.indexOf('=');
  return eq < 0 ? [tag, ''] : [tag.slice(0, eq), tag.slice(eq + 1)];
}

/** The first rule the agent tags do not satisfy, or undefined when they satisfy all. */
export function unmetBuildkiteRule(rules: readonly string[], agentTags: readonly string[]): string | undefined {
  const tags = agentTags.map(splitTag);
  for (const rule of rules) {
    const [key, pattern] = splitTag(rule);
    const values = tags.filter(([k]) => k === key).map(([, v]) => v);
    if (values.length === 0) return `needs ${JSON.stringify(rule)}, agents have no ${JSON.stringify(key)} tag`;
    if (!values.some((v) => globMatch(pattern, v)))
      return `needs ${JSON.stringify(rule)}, agents have ${values.map((v) => JSON.stringify(`${key}=${v}`)).join(', ')}`;
  }
  return undefined;
}

/** The job's rules with the default queue made explicit (a job without `queue=` targets it). */
export function effectiveBuildkiteRules(rules: readonly string[], defaultQueue: string): string[] {
  return rules.some((r) => splitTag(r)[0] === 'queue') ? [...rules] : [`queue=${defaultQueue}`, ...rules];
}

export function routeBuildkite(rules: readonly string[], routing: Routing): RouteResult {
  const effective = effectiveBuildkiteRules(rules, routing.buildkiteDefaultQueue);
  return routeBy('buildkite', routing.queues, (q) => unmetBuildkiteRule(effective, q.agentTags));
}

// --- GitHub ------------------------------------------------------------------------------

export function unmetGithubLabel(labels: readonly string[], runnerLabels: readonly string[]): string | undefined {
  const have = new Set(runnerLabels.map((l) => l.toLowerCase()));
  const missing = labels.filter((l) => !have.has(l.toLowerCase()));
  return missing.length === 0 ? undefined : `runners lack label(s) ${missing.map((l) => JSON.stringify(l)).join(', ')}`;
}

export function routeGithub(labels: readonly string[], routing: Routing): RouteResult {
  return routeBy('github', routing.queues, (q) => unmetGithubLabel(labels, q.runnerLabels));
}

// --- GitLab ------------------------------------------------------------------------------

export function unmetGitlabTag(
  tags: readonly string[],
  runnerTags: readonly string[],
  runUntagged: boolean,
): string | undefined {
  if (tags.length === 0) return runUntagged ? undefined : 'job is untagged and runners do not run untagged jobs';
  // GitLab stores tags through acts-as-taggable-on, whose default (strict_case_match off) makes
  // `Docker` and `docker` the same tag.
  const have = new Set(runnerTags.map((t) => t.toLowerCase()));
  const missing = tags.filter((t) => !have.has(t.toLowerCase()));
  return missing.length === 0 ? undefined : `runners lack tag(s) ${missing.map((t) => JSON.stringify(t)).join(', ')}`;
}

export function routeGitlab(tags: readonly string[], routing: Routing): RouteResult {
  return routeBy('gitlab', routing.queues, (q) => unmetGitlabTag(tags, q.runnerTags, q.runUntagged));
}

/** Whether any served queue could take jobs of this provider at all. */
export function servesProvider(provider: Provider, routing: Routing): boolean {
  return routing.queues.some((q) => q.provider === undefined || q.provider === provider);
}
