/** How the scaler reaches the cluster, GitHub (JIT runners) and Buildkite (recovery). */
import type { QueueSettings } from './overrides.js';
import {
  ConfigError,
  fail,
  GITHUB_NAME,
  GITHUB_REPO,
  int,
  list,
  optional,
  type Problems,
  type SecretSource,
  type Source,
  secret,
  ssmName,
  UUID,
  url,
} from './read.js';
import type { VariableName } from './registry.js';

export type ClusterAccess =
  | { readonly kind: 'kubeconfig-file'; readonly path: string }
  | { readonly kind: 'kubeconfig-parameter'; readonly name: string }
  | {
      readonly kind: 'eks';
      readonly clusterName: string;
      readonly endpoint?: string;
      readonly caData?: string;
    };

/** Where GitHub runners are registered. */
export type GitHubRunnerOwner =
  | { readonly kind: 'org'; readonly org: string }
  | { readonly kind: 'repo'; readonly owner: string; readonly repo: string };

export interface GitHubAppConfig {
  readonly appId: string;
  readonly privateKey: SecretSource;
  readonly owner: GitHubRunnerOwner;
  readonly runnerGroupId: number;
  readonly apiUrl: string;
  /** The hook whose failed deliveries are redelivered (GITHUB_WEBHOOK_ID). */
  readonly webhookId?: number;
}

export interface BuildkiteApiConfig {
  readonly organization: string;
  readonly url: string;
  readonly token: SecretSource;
  /** BUILDKITE_CLUSTERS (lower-cased); undefined: every cluster. */
  readonly clusters?: readonly string[];
}

export function cluster(env: Source): ClusterAccess {
  const file = optional(env, 'KUBECONFIG');
  const parameter = ssmName(env, 'KUBECONFIG_PARAMETER');
  const eks = optional(env, 'EKS_CLUSTER_NAME');
  const given = [file && 'KUBECONFIG', parameter && 'KUBECONFIG_PARAMETER', eks && 'EKS_CLUSTER_NAME'].filter(Boolean);
  if (given.length !== 1) {
    throw new ConfigError(
      'KUBECONFIG',
      `Set exactly one of KUBECONFIG, KUBECONFIG_PARAMETER and EKS_CLUSTER_NAME to reach the cluster, got ${
        given.length === 0 ? 'none' : given.join(' and ')
      }`,
    );
  }
  if (file) return { kind: 'kubeconfig-file', path: file };
  if (parameter) return { kind: 'kubeconfig-parameter', name: parameter };
  if (!eks) throw new Error('unreachable: exactly one cluster access is set');
  const endpoint = optional(env, 'EKS_CLUSTER_ENDPOINT');
  if (endpoint !== undefined && !endpoint.startsWith('https://')) fail(env, 'EKS_CLUSTER_ENDPOINT');
  const caData = optional(env, 'EKS_CLUSTER_CA');
  return {
    kind: 'eks',
    clusterName: eks,
    ...(endpoint ? { endpoint } : {}),
    ...(caData ? { caData } : {}),
  };
}

const GITHUB_VARIABLES = [
  'GITHUB_APP_ID',
  'GITHUB_APP_PRIVATE_KEY',
  'GITHUB_APP_PRIVATE_KEY_PARAMETER',
  'GITHUB_RUNNER_OWNER',
  'GITHUB_WEBHOOK_ID',
] as const;

function runnerOwner(env: Source, text: string): GitHubRunnerOwner {
  const parts = text.split('/');
  if (parts.length === 1 && GITHUB_NAME.test(parts[0] ?? '')) return { kind: 'org', org: text };
  if (parts.length === 2 && GITHUB_NAME.test(parts[0] ?? '') && GITHUB_REPO.test(parts[1] ?? ''))
    return { kind: 'repo', owner: parts[0] ?? '', repo: parts[1] ?? '' };
  return fail(env, 'GITHUB_RUNNER_OWNER');
}

function privateKey(env: Source, why: string): SecretSource {
  const key = secret(env, 'GITHUB_APP_PRIVATE_KEY', 'GITHUB_APP_PRIVATE_KEY_PARAMETER');
  if (key.kind === 'disabled') {
    throw new ConfigError(
      'GITHUB_APP_PRIVATE_KEY_PARAMETER',
      `GITHUB_APP_PRIVATE_KEY_PARAMETER (or GITHUB_APP_PRIVATE_KEY) must be set: ${why}, got nothing (unset)`,
    );
  }
  if (key.kind === 'value' && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.value)) {
    // Never echo a key, even a malformed one.
    throw new ConfigError(
      'GITHUB_APP_PRIVATE_KEY',
      'GITHUB_APP_PRIVATE_KEY must be the PEM private key of the GitHub App (-----BEGIN ... PRIVATE KEY-----), got something else',
    );
  }
  return key;
}

/** Set when a queue uses the github template or a GitHub App variable is set; each problem is collected. */
export function githubApp(
  env: Source,
  settings: Readonly<Record<string, QueueSettings>>,
  p: Problems,
): GitHubAppConfig | undefined {
  const githubQueues = Object.entries(settings)
    .filter(([, s]) => s.jobTemplate === 'github')
    .map(([q]) => q);
  const given = GITHUB_VARIABLES.filter((v) => optional(env, v) !== undefined);
  if (githubQueues.length === 0 && given.length === 0) return undefined;
  const why =
    githubQueues.length > 0
      ? `queue(s) ${githubQueues.map((q) => JSON.stringify(q)).join(', ')} use the github template`
      : `${given.join(', ')} ${given.length === 1 ? 'is' : 'are'} set`;
  const need = (name: VariableName): string => {
    const value = optional(env, name);
    if (value === undefined)
      throw new ConfigError(name, `${name} must be set: ${why} (${env.spec(name).expected}), got nothing (unset)`);
    return value;
  };
  const appId = p.take(() => {
    const id = need('GITHUB_APP_ID');
    return /^(\d{1,12}|Iv[0-9A-Za-z.]{4,40})$/.test(id) ? id : fail(env, 'GITHUB_APP_ID');
  }, '');
  const key = p.take<SecretSource>(() => privateKey(env, why), { kind: 'disabled' });
  const owner = p.take<GitHubRunnerOwner>(() => runnerOwner(env, need('GITHUB_RUNNER_OWNER')), {
    kind: 'org',
    org: '',
  });
  const webhookId =
    optional(env, 'GITHUB_WEBHOOK_ID') === undefined
      ? undefined
      : p.take(() => int(env, 'GITHUB_WEBHOOK_ID'), Number.NaN);
  return {
    appId,
    privateKey: key,
    owner,
    ...(webhookId === undefined ? {} : { webhookId }),
    runnerGroupId: p.take(() => int(env, 'GITHUB_RUNNER_GROUP_ID'), Number.NaN),
    apiUrl: p.take(() => url(env, 'GITHUB_API_URL').replace(/\/+$/, ''), ''),
  };
}

export function buildkiteApi(env: Source): BuildkiteApiConfig | undefined {
  const organization = optional(env, 'BUILDKITE_ORGANIZATION');
  const token = secret(env, 'BUILDKITE_API_TOKEN', 'BUILDKITE_API_TOKEN_PARAMETER');
  if (organization === undefined) {
    if (token.kind !== 'disabled')
      throw new ConfigError(
        'BUILDKITE_ORGANIZATION',
        `BUILDKITE_ORGANIZATION must be set with the Buildkite API token (${env.spec('BUILDKITE_ORGANIZATION').expected}), got nothing (unset)`,
      );
    return undefined;
  }
  if (!/^[a-z0-9][a-z0-9-]{0,99}$/.test(organization)) fail(env, 'BUILDKITE_ORGANIZATION');
  if (token.kind === 'disabled')
    throw new ConfigError(
      'BUILDKITE_API_TOKEN_PARAMETER',
      'BUILDKITE_API_TOKEN_PARAMETER (or BUILDKITE_API_TOKEN) must be set: BUILDKITE_ORGANIZATION is set, got nothing (unset)',
    );
  const clusters = list(env, 'BUILDKITE_CLUSTERS', (c) => UUID.test(c));
  return {
    organization,
    url: url(env, 'BUILDKITE_API_URL').replace(/\/+$/, ''),
    token,
    ...(clusters ? { clusters } : {}),
  };
}
