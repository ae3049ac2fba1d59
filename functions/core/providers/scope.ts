/**
 * Which CI jobs are ours, and which of our queues' agents runs a job. Pure: no I/O.
 *
 * Only our jobs (JobScope): a provider's webhook may deliver jobs of organisations, repositories,
 * projects or clusters this deployment does not serve (an organisation hook of a GitHub App
 * installed elsewhere, a GitLab group hook, a Buildkite organisation with several clusters).
 * They are answered 202 `ignored` with the reason, never counted:
 *  - GitHub: the job's repository (`repository.full_name`) must be one of GITHUB_REPOSITORIES
 *    (`owner` = every repository of that owner, or `owner/repo`), by default GITHUB_RUNNER_OWNER;
 *  - GitLab: the job's project (`project_id`, `project.path_with_namespace`) one of GITLAB_PROJECTS;
 *  - Buildkite: the pipeline's cluster (`pipeline.cluster_id`, REST pipeline data model) one of
 *    BUILDKITE_CLUSTERS.
 * An unset list accepts every job of that provider (as before).
 *
 * Where a job runs (agentQueue): a provider gives a job to ANY agent whose labels/tags cover it
 * (GitHub: runs-on labels a subset of the runner's; GitLab: job tags a subset of the runner's;
 * Buildkite: every agent query rule met), so a `[self-hosted]` job counted in `default` may be
 * taken by a `gpu` runner. The `started` event says which agent took it; our agents' names carry
 * their queue (functions/core/agent-job.ts jobNameFor: pods `cia-<queue slug>-<16 hex>-<index>-
 * <5 chars>`, the name Buildkite and GitLab agents register with ($(POD_NAME)); JIT GitHub runners
 * functions/adapters/github/jit-runners.ts runnerName: `cia<5 hex>-<queue slug>-<16 hex>-<index>-
 * <4 hex>`). Where the name says nothing (an agent not started by us, a custom template naming
 * its agents otherwise), the agent's declared tags are compared with each queue's (GitLab
 * `runner.tags`, Buildkite `agent.meta_data`), and failing that the job stays where its own
 * requirements put it.
 */

import type { QueueAgents, Routing } from '../routing.js';
import type { ProviderDescriptor } from './descriptor.js';

export interface JobScope {
  /** GitHub: lower-cased `owner` or `owner/repo` entries; undefined = any repository. */
  readonly githubRepositories?: readonly string[];
  /** GitLab: project ids (digits) or lower-cased full paths; undefined = any project. */
  readonly gitlabProjects?: readonly string[];
  /** Buildkite: lower-cased cluster UUIDs; undefined = any cluster. */
  readonly buildkiteClusters?: readonly string[];
}

/** Why a GitHub job's repository is not ours, or undefined when it is. */
export function githubOutOfScope(fullName: string | undefined, scope: JobScope | undefined): string | undefined {
  const allowed = scope?.githubRepositories;
  if (allowed === undefined) return undefined;
  if (fullName === undefined) return 'repository.full_name is missing: cannot tell whose job it is';
  const name = fullName.toLowerCase();
  const owner = name.split('/')[0] ?? '';
  if (allowed.includes(name) || allowed.includes(owner)) return undefined;
  return `repository ${fullName} is not served here (GITHUB_REPOSITORIES)`;
}

/** Why a GitLab job's project is not ours, or undefined when it is. */
export function gitlabOutOfScope(
  projectId: string,
  path: string | undefined,
  scope: JobScope | undefined,
): string | undefined {
  const allowed = scope?.gitlabProjects;
  if (allowed === undefined) return undefined;
  if (allowed.includes(projectId)) return undefined;
  if (path !== undefined && allowed.includes(path.toLowerCase())) return undefined;
  return `project ${path ?? projectId} (id ${projectId}) is not served here (GITLAB_PROJECTS)`;
}

/** Why a Buildkite job's cluster is not ours, or undefined when it is. */
export function buildkiteOutOfScope(clusterId: string | undefined, scope: JobScope | undefined): string | undefined {
  const allowed = scope?.buildkiteClusters;
  if (allowed === undefined) return undefined;
  if (clusterId !== undefined && allowed.includes(clusterId.toLowerCase())) return undefined;
  return clusterId === undefined
    ? 'the pipeline is in no cluster, and only BUILDKITE_CLUSTERS are served here'
    : `cluster ${clusterId} is not served here (BUILDKITE_CLUSTERS)`;
}

/** A queue's slug as jobNameFor / runnerName write it (lower-case, `-` separated, cut). */
export function queueSlug(queue: string, max: number): string {
  return queue
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/, '');
}

/** Pod of an Indexed Job named by jobNameFor: `cia-<slug>-<16 hex>-<index>-<5 chars>`. */
const POD_NAME = /^cia-(?:([a-z0-9-]+)-)?[0-9a-f]{16}-\d+-[a-z0-9]{5}$/;
/** A JIT runner named by runnerName: `cia<5 hex>-<slug>-<16 hex>-<index>-<4 hex>`. */
const RUNNER_NAME = /^cia[0-9a-f]{5}-(?:([a-z0-9-]+)-)?[0-9a-f]{16}-\d+-[0-9a-f]{4}$/;

/** The served queues (of this provider) an agent name made by us points at, in QUEUES order. */
function queuesByName(name: string, candidates: readonly QueueAgents[]): QueueAgents[] {
  const pod = POD_NAME.exec(name);
  const runner = pod ? undefined : RUNNER_NAME.exec(name);
  const match = pod ?? runner;
  if (!match) return [];
  const slug = match[1] ?? '';
  const max = pod ? 30 : 20;
  return candidates.filter((q) => queueSlug(q.queue, max) === slug);
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => {
  const x = new Set(a.map((s) => s.toLowerCase()));
  const y = new Set(b.map((s) => s.toLowerCase()));
  return x.size === y.size && [...x].every((s) => y.has(s));
};

export interface AgentFacts {
  /** The name the agent registered with (GitHub runner_name, Buildkite agent.name, GitLab runner.description). */
  readonly name?: string | undefined;
  /** The agent's own tags where the event carries them (GitLab runner.tags, Buildkite agent.meta_data). */
  readonly tags?: readonly string[] | undefined;
}

/**
 * The served queue whose agent took the job, or undefined when the event does not tell (no
 * agent, or not one of ours). Several queues with the same slug (`GPU` and `gpu`) are told apart
 * by the agent's tags where it has some, else the first in QUEUES order.
 */
export function agentQueue(
  provider: Pick<ProviderDescriptor, 'name' | 'agentTags'>,
  agent: AgentFacts,
  routing: Routing,
): string | undefined {
  const candidates = routing.queues.filter((q) => q.provider === undefined || q.provider === provider.name);
  // The declaration of a queue holding the tags its agents register with (the descriptor's).
  const tagsOf = (q: QueueAgents): readonly string[] => q[provider.agentTags];
  const tags = agent.tags && agent.tags.length > 0 ? agent.tags : undefined;
  const named = agent.name ? queuesByName(agent.name, candidates) : [];
  if (named.length > 0) {
    return (tags ? named.find((q) => sameSet(tagsOf(q), tags)) : undefined)?.queue ?? named[0]?.queue;
  }
  if (tags) return candidates.find((q) => sameSet(tagsOf(q), tags))?.queue;
  return undefined;
}
