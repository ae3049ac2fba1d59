/** The webhook's configuration: secrets, body and replay limits, and which jobs are ours. */
import { PROVIDERS, type Provider } from '../../core/job-event.js';
import { descriptorOf } from '../../core/providers/registry.js';
import type { JobScope } from '../../core/providers/scope.js';
import { type CommonConfig, common } from './common.js';
import {
  type Env,
  fail,
  GITHUB_NAME,
  GITHUB_REPO,
  gitlabProjects,
  int,
  list,
  optional,
  Problems,
  type SecretSource,
  type Source,
  secret,
  source,
  UUID,
} from './read.js';
import type { VariableName } from './registry.js';
import { COMMON_VARIABLES } from './variables/common.js';
import { GITHUB_RUNNER_OWNER } from './variables/scaler.js';
import { WEBHOOK_VARIABLES } from './variables/webhook.js';

export interface WebhookConfig extends CommonConfig {
  /** Each provider's webhook secret (its descriptor's secretVariable, plain or `_PARAMETER`). */
  readonly secrets: Readonly<Record<Provider, SecretSource>>;
  readonly maxBodyBytes: number;
  readonly buildkiteReplayWindowSeconds: number;
  /** Which jobs are ours (GITHUB_REPOSITORIES, GITLAB_PROJECTS, BUILDKITE_CLUSTERS). */
  readonly scope: JobScope;
}

const DISABLED: SecretSource = { kind: 'disabled' };

/** Reads and checks every webhook variable; all problems are thrown as one ConfigError. */
export function loadWebhookConfig(vars: Env = process.env): WebhookConfig {
  const env = source(vars, [...COMMON_VARIABLES, ...WEBHOOK_VARIABLES, GITHUB_RUNNER_OWNER]);
  const p = new Problems();
  const { queueSettings: _s, defaults: _d, ...base } = common(env, false, p);
  const config: WebhookConfig = {
    ...base,
    secrets: webhookSecrets(env, p),
    maxBodyBytes: p.take(() => int(env, 'WEBHOOK_MAX_BODY_BYTES'), Number.NaN),
    buildkiteReplayWindowSeconds: p.take(() => int(env, 'BUILDKITE_REPLAY_WINDOW_SECONDS'), Number.NaN),
    scope: jobScope(env, p),
  };
  p.done();
  return config;
}

/**
 * The secret of every provider in the registry, in its order. Its variables are declared in
 * variables/webhook.ts (test/unit/providers-registry.test.ts checks each descriptor's are).
 */
function webhookSecrets(env: Source, p: Problems): Record<Provider, SecretSource> {
  const read = (provider: Provider): SecretSource => {
    const plain = descriptorOf(provider).secretVariable as VariableName;
    return p.take(() => secret(env, plain, `${plain}_PARAMETER` as VariableName), DISABLED);
  };
  return Object.fromEntries(PROVIDERS.map((provider) => [provider, read(provider)])) as Record<Provider, SecretSource>;
}

function githubScope(env: Source): string[] | undefined {
  const repositories = list(env, 'GITHUB_REPOSITORIES', (r) => {
    const [owner = '', repo, extra] = r.split('/');
    return extra === undefined && GITHUB_NAME.test(owner) && (repo === undefined || GITHUB_REPO.test(repo));
  });
  if (repositories !== undefined) return repositories;
  const owner = optional(env, 'GITHUB_RUNNER_OWNER');
  if (owner === undefined) return undefined;
  const [o = '', repo, extra] = owner.split('/');
  if (extra !== undefined || !GITHUB_NAME.test(o) || (repo !== undefined && !GITHUB_REPO.test(repo)))
    fail(env, 'GITHUB_RUNNER_OWNER');
  return [owner.toLowerCase()];
}

function jobScope(env: Source, p: Problems): JobScope {
  const github = p.take(() => githubScope(env), undefined);
  const gitlab = p.take(() => gitlabProjects(env), undefined);
  const buildkite = p.take(() => list(env, 'BUILDKITE_CLUSTERS', (c) => UUID.test(c)), undefined);
  return {
    ...(github ? { githubRepositories: github } : {}),
    ...(gitlab ? { gitlabProjects: gitlab } : {}),
    ...(buildkite ? { buildkiteClusters: buildkite } : {}),
  };
}
