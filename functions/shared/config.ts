/**
 * The one configuration module. Every environment variable the product reads is declared once
 * here, with its default, the functions that read it, and a description. Each function validates
 * its own variables once, at cold start; a bad value throws a ConfigError naming the variable,
 * the value it got and what it expects. The README's configuration table is generated from this
 * list (`npm run docs:config`) and a test fails when the two drift apart.
 */
import { PROVIDERS, type Provider, QUEUE_NAME_PATTERN as QUEUE_NAME } from '../core/job-event.js';
import type { JobScope } from '../core/providers/scope.js';
import {
  defaultAgentTags,
  defaultRunnerLabels,
  defaultRunnerTags,
  type QueueAgents,
  type Routing,
} from '../core/routing.js';

export type FunctionName = 'webhook' | 'scaler' | 'cache';

export interface VariableSpec {
  readonly name: string;
  readonly functions: readonly FunctionName[];
  /** Shown in the README; `undefined` means required (or optional without default). */
  readonly default?: string;
  readonly required?: boolean;
  /** What a valid value looks like, in words, used in error messages and the README. */
  readonly expected: string;
  readonly description: string;
  readonly secret?: boolean;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const VARIABLES = [
  // --- shared -------------------------------------------------------------------------------
  {
    name: 'EVENTS_QUEUE_URL',
    functions: ['webhook', 'scaler'],
    required: true,
    expected: 'an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)',
    description:
      'Queue the webhook records normalised job events in and the scaler drains. A name ending in `.fifo` makes the webhook set FIFO deduplication and group ids.',
  },
  {
    name: 'QUEUES',
    functions: ['webhook', 'scaler'],
    default: 'default',
    expected: 'a comma-separated list of queue names (letters, digits, . _ -)',
    description:
      "CI queues this deployment serves, in precedence order. A job counts for the first queue whose agents could take it, by the provider's own rule (README, Matching jobs to queues). Jobs no queue can serve are answered 202 and ignored.",
  },
  {
    name: 'QUEUE_OVERRIDES',
    functions: ['webhook', 'scaler'],
    default: '{}',
    expected:
      'a JSON object keyed by queue name, each value {"minAgents"?: int, "maxAgents"?: int, "jobTemplate"?: string, "provider"?: "buildkite"|"github"|"gitlab", "agentTags"?: ["key=value", ...], "runnerLabels"?: [string, ...], "runnerTags"?: [string, ...], "runUntagged"?: boolean, "runnerTokenSecret"?: string}',
    description:
      "Per-queue overrides of MIN_AGENTS, MAX_AGENTS and JOB_TEMPLATE, and what the queue's agents carry: Buildkite agent tags (default `queue=<name>`), GitHub runner labels (default `self-hosted`, `linux`, `x64`, `<name>`), GitLab runner tags (default `<name>`) and whether its GitLab runners take untagged jobs (default false); `runnerTokenSecret` names the queue's own GitLab runner token Secret. `provider` defaults to the template's (buildkite/github/gitlab); a queue with a custom template and no provider counts jobs of any provider.",
  },
  {
    name: 'LOG_LEVEL',
    functions: ['webhook', 'scaler', 'cache'],
    default: 'INFO',
    expected: 'one of DEBUG, INFO, WARN, ERROR',
    description: 'Minimum level of the structured JSON logs.',
  },
  // --- webhook ------------------------------------------------------------------------------
  {
    name: 'BUILDKITE_WEBHOOK_SECRET',
    functions: ['webhook'],
    expected: 'the token or signing secret of the Buildkite webhook',
    description:
      'Buildkite webhook token/signature secret, plain (local use). Without it and BUILDKITE_WEBHOOK_SECRET_PARAMETER the Buildkite route answers 404.',
    secret: true,
  },
  {
    name: 'BUILDKITE_WEBHOOK_SECRET_PARAMETER',
    functions: ['webhook'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description:
      'SSM parameter holding the Buildkite secret; fetched once per container, refreshed when verification fails.',
  },
  {
    name: 'GITHUB_WEBHOOK_SECRET',
    functions: ['webhook'],
    expected: 'one or more secrets, comma-separated (several during a rotation)',
    description:
      'GitHub webhook secret(s), plain (local use). Without it and GITHUB_WEBHOOK_SECRET_PARAMETER the GitHub route answers 404.',
    secret: true,
  },
  {
    name: 'GITHUB_WEBHOOK_SECRET_PARAMETER',
    functions: ['webhook'],
    expected:
      'an SSM Parameter Store name (SecureString) starting with "/"; its value may hold several comma-separated secrets',
    description: 'SSM parameter holding the GitHub secret(s).',
  },
  {
    name: 'GITLAB_WEBHOOK_TOKEN',
    functions: ['webhook'],
    expected: 'the secret token of the GitLab webhook',
    description:
      'GitLab webhook secret token, plain (local use). Without it and GITLAB_WEBHOOK_TOKEN_PARAMETER the GitLab route answers 404.',
    secret: true,
  },
  {
    name: 'GITLAB_WEBHOOK_TOKEN_PARAMETER',
    functions: ['webhook'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description: 'SSM parameter holding the GitLab token.',
  },
  {
    name: 'JOB_TEMPLATE',
    functions: ['webhook', 'scaler'],
    default: 'buildkite',
    expected: 'buildkite, github, gitlab, or a path to a Job template YAML file',
    description:
      'Agent Job template (files in infra/k8s/agents/) used for queues without an override; a built-in name also sets which provider those queues serve.',
  },
  {
    name: 'BUILDKITE_DEFAULT_QUEUE',
    functions: ['webhook'],
    default: 'default',
    expected: 'a queue name (letters, digits, . _ -)',
    description: "The queue a Buildkite job without a `queue=` agent rule targets: your cluster's default queue key.",
  },
  {
    name: 'GITHUB_REPOSITORIES',
    functions: ['webhook'],
    expected: 'a comma-separated list of owners (`my-org`) and repositories (`owner/repo`)',
    description:
      'GitHub jobs counted: those of these owners and repositories; others are answered 202 `ignored`. Unset: the jobs of GITHUB_RUNNER_OWNER when it is set, else every job.',
  },
  {
    name: 'GITLAB_PROJECTS',
    functions: ['webhook', 'scaler'],
    expected: 'a comma-separated list of GitLab project ids (`380`) and full paths (`group/project`)',
    description:
      "GitLab jobs counted: those of these projects; others are answered 202 `ignored`. Unset: every project's. The scaler also lists these projects' pending jobs to recover lost deliveries (PROVIDER_RECONCILE_SECONDS).",
  },
  {
    name: 'BUILDKITE_CLUSTERS',
    functions: ['webhook', 'scaler'],
    expected: 'a comma-separated list of Buildkite cluster UUIDs',
    description:
      "Buildkite jobs counted: those of pipelines in these clusters (`pipeline.cluster_id`); others are answered 202 `ignored`. Unset: every cluster's.",
  },
  {
    name: 'WEBHOOK_MAX_BODY_BYTES',
    functions: ['webhook'],
    default: '1048576',
    expected: 'an integer from 1024 to 10485760',
    description: 'Largest request body accepted; larger ones get 413 and are not recorded.',
  },
  {
    name: 'BUILDKITE_REPLAY_WINDOW_SECONDS',
    functions: ['webhook'],
    default: '300',
    expected: 'an integer from 1 to 86400',
    description: 'How far the timestamp of a signed Buildkite request may be from now.',
  },
  // --- scaler -------------------------------------------------------------------------------
  {
    name: 'LEDGER_TABLE',
    functions: ['scaler'],
    required: true,
    expected: 'a DynamoDB table name',
    description: 'Table holding the job ledger, the in-flight limiter and its dispatches.',
  },
  {
    name: 'MIN_AGENTS',
    functions: ['scaler'],
    default: '0',
    expected: 'an integer >= 0',
    description: 'Warm floor: agents kept in flight per queue even with no pending job (a floor, not added to demand).',
  },
  {
    name: 'MAX_AGENTS',
    functions: ['scaler'],
    default: '10',
    expected: 'an integer >= MIN_AGENTS and >= 1',
    description: 'Hard cap of agents in flight per queue, across all concurrent scaler invocations.',
  },
  {
    name: 'WARM_POOL',
    functions: ['scaler'],
    default: 'off',
    expected: 'off or adaptive',
    description:
      'adaptive: keep idle agents ready on top of pending demand, sized from the arrivals the ledger saw in the last 10 minutes and the agent start-up time measured on our Jobs; 0 when arrivals stop, always within MIN_AGENTS..MAX_AGENTS. Its inputs are in the `scaling decision` log line.',
  },
  {
    name: 'KUBE_NAMESPACE',
    functions: ['scaler'],
    default: 'ci-agents',
    expected: 'a Kubernetes namespace name',
    description: 'Namespace the agent Jobs are created and listed in.',
  },
  {
    name: 'JOB_TTL_SECONDS_AFTER_FINISHED',
    functions: ['scaler'],
    default: '600',
    expected: 'an integer >= INTENT_LEASE_SECONDS',
    description:
      'Kubernetes deletes a finished agent Job this long after it finished. At least the intent lease, so a retried create can never recreate a Job that already ran.',
  },
  {
    name: 'JOB_ACTIVE_DEADLINE_SECONDS',
    functions: ['scaler'],
    default: '22800',
    expected: 'an integer >= 60',
    description:
      "An agent Job still running after this long is stopped by Kubernetes (bounds a stuck agent). The default, 6 h 20 min, lets a CI job run GitHub's default `timeout-minutes` (360) after up to 20 min of start and idle wait; GitLab's default job timeout is 1 h, Buildkite sets none. Raise it for longer jobs.",
  },
  {
    name: 'INTENT_LEASE_SECONDS',
    functions: ['scaler'],
    default: '120',
    expected: 'an integer from 10 to 3600',
    description: 'A dispatch whose Job could not be created is retried each tick and released after this long.',
  },
  {
    name: 'LEDGER_RETENTION_DAYS',
    functions: ['scaler'],
    default: '7',
    expected: 'an integer from 1 to 365',
    description:
      'Finished and cancelled CI jobs stay in the ledger this long (DynamoDB TTL), to absorb late duplicates.',
  },
  {
    name: 'LEDGER_OPEN_MAX_AGE_HOURS',
    functions: ['scaler'],
    default: '24',
    expected: 'an integer from 1 to 720',
    description:
      'A CI job still scheduled or running this long after its last event no longer counts (its finished/cancelled webhook was lost), so it cannot keep an agent provisioned forever.',
  },
  {
    name: 'SCALER_BUDGET_SECONDS',
    functions: ['scaler'],
    default: '58',
    expected: 'an integer from 1 to 890 (the function timeout keeps 8 s more)',
    description:
      'How long one invocation keeps ticking (long-polling for events) before it returns. Close to the schedule period, so there is almost no gap between invocations; overlaps are safe.',
  },
  {
    name: 'SCALER_POLL_SECONDS',
    functions: ['scaler'],
    default: '20',
    expected: 'an integer from 1 to 20',
    description:
      'Long-poll wait for new events when no CI job is waiting: an event ends the wait at once; without one the scaler still reconciles this often. While jobs wait for agents it re-ticks every 2 s.',
  },
  {
    name: 'AGENT_BACKOFF_BASE_SECONDS',
    functions: ['scaler'],
    default: '30',
    expected: 'an integer from 1 to 3600',
    description:
      "A queue whose agents fail at start (failed pod, CreateContainerConfigError, image pull error, unschedulable) creates no Job for this long, doubling with each further failure up to AGENT_BACKOFF_MAX_SECONDS; the queue's first healthy agent resets it. Other queues are not held.",
  },
  {
    name: 'AGENT_BACKOFF_MAX_SECONDS',
    functions: ['scaler'],
    default: '600',
    expected: 'an integer >= AGENT_BACKOFF_BASE_SECONDS and <= 86400',
    description: 'Longest back-off of a queue whose agents keep failing at start.',
  },
  {
    name: 'AGENT_UNSCHEDULABLE_SECONDS',
    functions: ['scaler'],
    default: '300',
    expected: 'an integer from 10 to 86400',
    description: 'An agent pod unschedulable for longer than this counts as failed at start (back-off).',
  },
  {
    name: 'GITHUB_APP_ID',
    functions: ['scaler'],
    expected: 'the numeric App ID (or the Client ID) of a GitHub App',
    description:
      'GitHub App that registers just-in-time runners (permission: self-hosted runners read/write on the organisation, or administration on the repository). Required with GITHUB_RUNNER_OWNER and a private key when a queue uses the `github` template.',
  },
  {
    name: 'GITHUB_APP_PRIVATE_KEY',
    functions: ['scaler'],
    expected: 'the PEM private key of the GitHub App',
    description: 'The App private key, plain (local use). In AWS use GITHUB_APP_PRIVATE_KEY_PARAMETER.',
    secret: true,
  },
  {
    name: 'GITHUB_APP_PRIVATE_KEY_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/", holding the PEM private key',
    description: 'SSM parameter holding the App private key; fetched once per container.',
  },
  {
    name: 'GITHUB_RUNNER_OWNER',
    functions: ['webhook', 'scaler'],
    expected: 'an organisation (`my-org`) or a repository (`owner/repo`)',
    description:
      'Where the runners are registered: organisation runners, or repository runners. The webhook counts only the jobs of this owner or repository unless GITHUB_REPOSITORIES says otherwise.',
  },
  {
    name: 'GITHUB_RUNNER_GROUP_ID',
    functions: ['scaler'],
    default: '1',
    expected: 'an integer >= 1',
    description: 'Runner group of the organisation runners (1 is the Default group; repository runners use 1).',
  },
  {
    name: 'GITHUB_WEBHOOK_ID',
    functions: ['scaler'],
    expected:
      'the integer id of the organisation or repository webhook that delivers `workflow_job` (X-GitHub-Hook-ID)',
    description:
      "The webhook whose failed deliveries the scaler asks GitHub to redeliver (GitHub does not retry them), every PROVIDER_RECONCILE_SECONDS, on GITHUB_RUNNER_OWNER's hooks. The App then needs the organisation (or repository) webhooks permission, read and write. Unset: no redelivery.",
  },
  {
    name: 'BUILDKITE_ORGANIZATION',
    functions: ['scaler'],
    expected: 'a Buildkite organisation slug',
    description:
      'Organisation whose scheduled jobs the scaler recovers every PROVIDER_RECONCILE_SECONDS (at most 2 requests), with BUILDKITE_API_TOKEN(_PARAMETER). Unset: no recovery.',
  },
  {
    name: 'BUILDKITE_API_TOKEN',
    functions: ['scaler'],
    expected: 'a Buildkite API access token with the read_builds scope',
    description: 'Token for the recovery of scheduled jobs, plain (local use).',
    secret: true,
  },
  {
    name: 'BUILDKITE_API_TOKEN_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description: 'SSM parameter holding the read_builds token.',
  },
  {
    name: 'BUILDKITE_API_URL',
    functions: ['scaler'],
    default: 'https://api.buildkite.com/v2',
    expected: 'an http(s) URL',
    description: 'Buildkite REST API base URL.',
  },
  {
    name: 'PROVIDER_RECONCILE_SECONDS',
    functions: ['scaler'],
    default: '120',
    expected: 'an integer: 0 (off) or from 30 to 3600',
    description:
      "How often the scaler recovers CI jobs whose webhook delivery was lost: redelivers GitHub's failed deliveries (GITHUB_WEBHOOK_ID: at most 3 list calls and 10 redeliveries) lists the pending jobs of GITLAB_PROJECTS (one call per project) and the scheduled jobs of BUILDKITE_ORGANIZATION (at most 2 calls). Providers without credentials are skipped.",
  },
  {
    name: 'GITHUB_API_URL',
    functions: ['scaler'],
    default: 'https://api.github.com',
    expected: 'an http(s) URL',
    description: 'GitHub REST API base URL (GitHub Enterprise Server: `https://HOST/api/v3`).',
  },
  {
    name: 'GITLAB_API_URL',
    functions: ['scaler'],
    default: 'https://gitlab.com/api/v4',
    expected: 'an http(s) URL of a GitLab REST API v4',
    description:
      "Where the scaler looks up a GitLab job's tags (`GET /projects/:id/jobs/:job_id`, once per CI job): the Job Hook does not carry them.",
  },
  {
    name: 'GITLAB_API_TOKEN',
    functions: ['scaler'],
    expected: 'a GitLab access token with the read_api scope',
    description:
      'Token for the job-tags lookup, plain (local use). Without it and GITLAB_API_TOKEN_PARAMETER, GitLab events cannot be routed and stay in the events queue (then its dead-letter queue).',
    secret: true,
  },
  {
    name: 'GITLAB_API_TOKEN_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description: 'SSM parameter holding the read_api token; fetched once per container, refreshed after a 401.',
  },
  {
    name: 'KUBECONFIG',
    functions: ['scaler'],
    expected: 'a path to a kubeconfig file',
    description: 'Reach the cluster as kubectl would (local runs, tests, non-EKS clusters).',
  },
  {
    name: 'KUBECONFIG_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/", holding a kubeconfig',
    description: 'Reach any cluster with a kubeconfig kept in SSM.',
  },
  {
    name: 'EKS_CLUSTER_NAME',
    functions: ['scaler'],
    expected: 'an EKS cluster name',
    description:
      "Reach an EKS cluster with a token presigned from the function's IAM role. Endpoint and CA come from EKS_CLUSTER_ENDPOINT/EKS_CLUSTER_CA or eks:DescribeCluster.",
  },
  {
    name: 'EKS_CLUSTER_ENDPOINT',
    functions: ['scaler'],
    expected: 'an https:// URL',
    description: 'EKS API server endpoint (skips eks:DescribeCluster when given with EKS_CLUSTER_CA).',
  },
  {
    name: 'EKS_CLUSTER_CA',
    functions: ['scaler'],
    expected: 'the base64 certificate authority data of the cluster',
    description: 'EKS cluster CA (base64, as in a kubeconfig).',
  },
  // --- cache --------------------------------------------------------------------------------
  {
    name: 'CACHE_BUCKET',
    functions: ['cache'],
    required: true,
    expected: 'an S3 bucket name',
    description: 'Bucket holding the build cache entries (one object per entry, under <namespace>/<serviceaccount>/).',
  },
  {
    name: 'CACHE_TABLE',
    functions: ['cache'],
    required: true,
    expected: 'a DynamoDB table name',
    description: 'Table holding the committed cache entries (infra/aws/cache.yml).',
  },
  {
    name: 'CACHE_TOKEN_ISSUER',
    functions: ['cache'],
    expected: "an http(s) URL, the cluster's service account issuer",
    description:
      "Issuer (`iss`) of the agents' projected ServiceAccount tokens; its keys come from `<issuer>/.well-known/openid-configuration` unless CACHE_JWKS_URL is set. On EKS: the cluster's OpenID Connect provider URL. Unset: the cache is off and its routes answer 404.",
  },
  {
    name: 'CACHE_JWKS_URL',
    functions: ['cache'],
    expected: 'an http(s) URL of a JWKS document',
    description: "Where the issuer's public keys are, when not from its discovery document.",
  },
  {
    name: 'CACHE_TOKEN_AUDIENCE',
    functions: ['cache'],
    default: 'ci-cache',
    expected: 'a non-empty string',
    description:
      "Audience the agents' projected tokens must carry (the `audience` of the token volume in infra/k8s/agents).",
  },
  {
    name: 'CACHE_MAX_ENTRY_BYTES',
    functions: ['cache'],
    default: '10737418240',
    expected: 'an integer from 1 to CACHE_SCOPE_MAX_BYTES',
    description: 'Largest entry; a larger save is refused before any upload (413).',
  },
  {
    name: 'CACHE_SCOPE_MAX_BYTES',
    functions: ['cache'],
    default: '107374182400',
    expected: 'an integer >= 1',
    description: 'Bytes one scope (ServiceAccount) may hold; beyond it the least recently used entries are evicted.',
  },
  {
    name: 'CACHE_RETENTION_DAYS',
    functions: ['cache'],
    default: '7',
    expected: 'an integer from 1 to 365',
    description:
      'An entry not saved or restored for this long is deleted (at the next save in its scope, or by the daily sweep).',
  },
  {
    name: 'CACHE_PART_BYTES',
    functions: ['cache'],
    default: '8388608',
    expected: 'an integer from 5242880 to 5368709120',
    description:
      'Size of the multipart parts (uploaded in parallel); larger for entries that would need more than 10,000 parts.',
  },
] as const satisfies readonly VariableSpec[];

export type VariableName = (typeof VARIABLES)[number]['name'];

type Env = Readonly<Record<string, string | undefined>>;

const SPECS = new Map<string, VariableSpec>(VARIABLES.map((v) => [v.name, v]));

function spec(name: VariableName): VariableSpec {
  const found = SPECS.get(name);
  if (!found) throw new Error(`unknown configuration variable ${name}`);
  return found;
}

/** The embedded default of a variable (undefined for required or optional-without-default). */
export function defaultOf(name: VariableName): string | undefined {
  return spec(name).default;
}

function fail(name: VariableName, raw: string | undefined, expected = spec(name).expected): never {
  const shown = raw === undefined ? 'nothing (unset)' : JSON.stringify(raw);
  throw new ConfigError(name, `${name} must be ${expected}, got ${shown}`);
}

/** Reads a variable, falling back to its default; empty strings count as unset. */
function raw(env: Env, name: VariableName): string | undefined {
  const value = env[name];
  if (value !== undefined && value.trim() !== '') return value.trim();
  return spec(name).default;
}

function required(env: Env, name: VariableName): string {
  return raw(env, name) ?? fail(name, env[name]);
}

function optional(env: Env, name: VariableName): string | undefined {
  return raw(env, name);
}

function int(env: Env, name: VariableName, min: number, max = Number.MAX_SAFE_INTEGER, expected?: string): number {
  const value = raw(env, name);
  if (value === undefined || !/^-?\d+$/.test(value)) return fail(name, env[name], expected);
  const n = Number(value);
  if (n < min || n > max) return fail(name, env[name], expected);
  return n;
}

function queueList(env: Env): string[] {
  const value = required(env, 'QUEUES');
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0 || names.some((n) => !QUEUE_NAME.test(n))) fail('QUEUES', env.QUEUES);
  return [...new Set(names)];
}

function url(env: Env, name: VariableName): string {
  const value = required(env, name);
  try {
    const parsed = new URL(value);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error('scheme');
  } catch {
    fail(name, env[name]);
  }
  return value;
}

const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function logLevel(env: Env): LogLevel {
  const value = required(env, 'LOG_LEVEL').toUpperCase();
  if (!(LOG_LEVELS as readonly string[]).includes(value)) fail('LOG_LEVEL', env.LOG_LEVEL);
  return value as LogLevel;
}

/** A secret is either given plainly (local use) or by SSM parameter name; neither disables it. */
export type SecretSource =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'parameter'; readonly name: string }
  | { readonly kind: 'disabled' };

/**
 * An SSM parameter name: a full path ("/team/ci/secret"). The IAM policies grant
 * `arn:...:parameter${name}`, which only names the parameter when the name starts with "/".
 */
function ssmName(env: Env, name: VariableName): string | undefined {
  const value = optional(env, name);
  if (value !== undefined && !/^\/[A-Za-z0-9_.\-/]{1,1010}$/.test(value)) fail(name, env[name]);
  return value;
}

function secret(env: Env, plain: VariableName, parameter: VariableName): SecretSource {
  const value = optional(env, plain);
  const name = ssmName(env, parameter);
  if (value !== undefined && name !== undefined) {
    throw new ConfigError(parameter, `Set only one of ${plain} and ${parameter}, not both`);
  }
  if (value !== undefined) return { kind: 'value', value };
  if (name !== undefined) return { kind: 'parameter', name };
  return { kind: 'disabled' };
}

export interface CommonConfig {
  readonly eventsQueueUrl: string;
  readonly queues: readonly string[];
  readonly logLevel: LogLevel;
  /** What each served queue's agents carry, and the Buildkite default queue. */
  readonly routing: Routing;
}

export interface WebhookConfig extends CommonConfig {
  readonly secrets: {
    readonly buildkite: SecretSource;
    readonly github: SecretSource;
    readonly gitlab: SecretSource;
  };
  readonly maxBodyBytes: number;
  readonly buildkiteReplayWindowSeconds: number;
  /** Which jobs are ours (GITHUB_REPOSITORIES, GITLAB_PROJECTS, BUILDKITE_CLUSTERS). */
  readonly scope: JobScope;
}

export interface QueueSettings {
  readonly minAgents: number;
  readonly maxAgents: number;
  readonly jobTemplate: string;
  /** The queue's declared agents (the same object routing uses). */
  readonly agents: QueueAgents;
  /** The queue's own GitLab runner token Secret (replaces the template's CI_SERVER_TOKEN Secret). */
  readonly runnerTokenSecret?: string;
}

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

export interface BackoffConfig {
  readonly baseSeconds: number;
  readonly maxSeconds: number;
  readonly unschedulableSeconds: number;
}

export interface ScalerConfig extends CommonConfig {
  readonly ledgerTable: string;
  readonly defaults: QueueSettings;
  /** Effective settings of every served queue (defaults with overrides applied). */
  readonly queueSettings: Readonly<Record<string, QueueSettings>>;
  readonly namespace: string;
  readonly jobTtlSecondsAfterFinished: number;
  readonly jobActiveDeadlineSeconds: number;
  readonly intentLeaseSeconds: number;
  readonly ledgerRetentionDays: number;
  readonly ledgerOpenMaxAgeHours: number;
  readonly budgetSeconds: number;
  readonly pollSeconds: number;
  readonly cluster: ClusterAccess;
  readonly backoff: BackoffConfig;
  /** Set when GitHub runners are registered just in time (a queue uses the `github` template). */
  readonly github?: GitHubAppConfig;
  readonly gitlabApi: { readonly url: string; readonly token: SecretSource };
  readonly warmPool: 'off' | 'adaptive';
  /** PROVIDER_RECONCILE_SECONDS: 0 = off. */
  readonly providerReconcileSeconds: number;
  /** GITLAB_PROJECTS: whose pending jobs are recovered (ids or lower-cased paths). */
  readonly gitlabProjects?: readonly string[];
  /** Set when BUILDKITE_ORGANIZATION is: whose scheduled jobs are recovered. */
  readonly buildkiteApi?: {
    readonly organization: string;
    readonly url: string;
    readonly token: SecretSource;
    /** BUILDKITE_CLUSTERS (lower-cased); undefined: every cluster. */
    readonly clusters?: readonly string[];
  };
}

interface Base extends CommonConfig {
  readonly queueSettings: Readonly<Record<string, QueueSettings>>;
  readonly defaults: QueueSettings;
}

/** `limits`: read MIN_AGENTS/MAX_AGENTS (the scaler); the webhook needs only the routing. */
function common(env: Env, limits: boolean): Base {
  const queues = queueList(env);
  const minAgents = limits ? int(env, 'MIN_AGENTS', 0) : 0;
  const maxAgents = limits ? int(env, 'MAX_AGENTS', Math.max(1, minAgents)) : Number.MAX_SAFE_INTEGER;
  const template = jobTemplate(required(env, 'JOB_TEMPLATE'), 'JOB_TEMPLATE', env);
  const defaults: QueueSettings = {
    minAgents,
    maxAgents,
    jobTemplate: template,
    agents: agentsOf('default', {}, template),
  };
  const settings = queueSettings(env, queues, defaults);
  const buildkiteDefaultQueue = required(env, 'BUILDKITE_DEFAULT_QUEUE');
  if (!QUEUE_NAME.test(buildkiteDefaultQueue)) fail('BUILDKITE_DEFAULT_QUEUE', env.BUILDKITE_DEFAULT_QUEUE);
  return {
    eventsQueueUrl: url(env, 'EVENTS_QUEUE_URL'),
    queues,
    logLevel: logLevel(env),
    routing: { queues: queues.map((q) => settings[q]?.agents ?? agentsOf(q, {}, template)), buildkiteDefaultQueue },
    queueSettings: settings,
    defaults,
  };
}

export function loadWebhookConfig(env: Env = process.env): WebhookConfig {
  const { queueSettings: _s, defaults: _d, ...base } = common(env, false);
  return {
    ...base,
    secrets: {
      buildkite: secret(env, 'BUILDKITE_WEBHOOK_SECRET', 'BUILDKITE_WEBHOOK_SECRET_PARAMETER'),
      github: secret(env, 'GITHUB_WEBHOOK_SECRET', 'GITHUB_WEBHOOK_SECRET_PARAMETER'),
      gitlab: secret(env, 'GITLAB_WEBHOOK_TOKEN', 'GITLAB_WEBHOOK_TOKEN_PARAMETER'),
    },
    maxBodyBytes: int(env, 'WEBHOOK_MAX_BODY_BYTES', 1024, 10 * 1024 * 1024),
    buildkiteReplayWindowSeconds: int(env, 'BUILDKITE_REPLAY_WINDOW_SECONDS', 1, 86_400),
    scope: jobScope(env),
  };
}

/** A comma-separated list, each element checked; undefined when unset. */
function list(env: Env, name: VariableName, valid: (item: string) => boolean): string[] | undefined {
  const value = optional(env, name);
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0 || items.some((i) => !valid(i))) fail(name, env[name]);
  return [...new Set(items.map((i) => i.toLowerCase()))];
}

const GITLAB_PATH = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** GitLab projects served (GITLAB_PROJECTS): positive ids and full paths, lower-cased. */
export function gitlabProjects(env: Env): string[] | undefined {
  return list(env, 'GITLAB_PROJECTS', (p) => /^[1-9]\d{0,15}$/.test(p) || GITLAB_PATH.test(p));
}

function jobScope(env: Env): JobScope {
  let github = list(env, 'GITHUB_REPOSITORIES', (r) => {
    const [owner = '', repo, extra] = r.split('/');
    return extra === undefined && GITHUB_NAME.test(owner) && (repo === undefined || GITHUB_REPO.test(repo));
  });
  if (github === undefined) {
    const owner = optional(env, 'GITHUB_RUNNER_OWNER');
    if (owner !== undefined) {
      const [o = '', repo, extra] = owner.split('/');
      if (extra !== undefined || !GITHUB_NAME.test(o) || (repo !== undefined && !GITHUB_REPO.test(repo)))
        fail('GITHUB_RUNNER_OWNER', env.GITHUB_RUNNER_OWNER);
      github = [owner.toLowerCase()];
    }
  }
  const gitlab = gitlabProjects(env);
  const buildkite = list(env, 'BUILDKITE_CLUSTERS', (c) => UUID.test(c));
  return {
    ...(github ? { githubRepositories: github } : {}),
    ...(gitlab ? { gitlabProjects: gitlab } : {}),
    ...(buildkite ? { buildkiteClusters: buildkite } : {}),
  };
}

function jobTemplate(value: string, name: VariableName, env: Env): string {
  if (['buildkite', 'github', 'gitlab'].includes(value) || value.endsWith('.yaml') || value.endsWith('.yml')) {
    return value;
  }
  return fail(name, env[name]);
}

interface QueueOverride {
  readonly minAgents?: number;
  readonly maxAgents?: number;
  readonly jobTemplate?: string;
  readonly provider?: Provider;
  readonly agentTags?: readonly string[];
  readonly runnerLabels?: readonly string[];
  readonly runnerTags?: readonly string[];
  readonly runUntagged?: boolean;
  readonly runnerTokenSecret?: string;
}

const OVERRIDE_KEYS = [
  'minAgents',
  'maxAgents',
  'jobTemplate',
  'provider',
  'agentTags',
  'runnerLabels',
  'runnerTags',
  'runUntagged',
  'runnerTokenSecret',
] as const;

/** A Kubernetes object name (DNS-1123 subdomain). */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** A label, tag or `key=value` element: printable, no comma (agents take them comma-separated). */
const ELEMENT = /^[^,\s][^,]{0,254}$/;

/** Validates one queue's override by hand (no schema library in the webhook's bundle). */
function parseOverride(queue: string, value: unknown, problem: (where: string, what: string) => never): QueueOverride {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return problem(queue, 'must be an object');
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(OVERRIDE_KEYS as readonly string[]).includes(key)) problem(`${queue}.${key}`, 'is not a known setting');
  }
  const int = (key: 'minAgents' | 'maxAgents', min: number): number | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      problem(`${queue}.${key}`, `must be an integer >= ${min}`);
    return v as number;
  };
  const list = (
    key: 'agentTags' | 'runnerLabels' | 'runnerTags',
    check?: (s: string) => boolean,
  ): string[] | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length === 0 || v.length > 64)
      problem(`${queue}.${key}`, 'must be a non-empty array of at most 64 strings');
    const items = v as unknown[];
    items.forEach((item, i) => {
      if (typeof item !== 'string' || !ELEMENT.test(item) || (check && !check(item)))
        problem(`${queue}.${key}.${i}`, `is not a valid element: ${JSON.stringify(item)}`);
    });
    return [...new Set(items as string[])];
  };
  const provider = o.provider;
  if (provider !== undefined && !(PROVIDERS as readonly unknown[]).includes(provider))
    problem(`${queue}.provider`, `must be one of ${PROVIDERS.join(', ')}`);
  const jobTemplateValue = o.jobTemplate;
  if (jobTemplateValue !== undefined && (typeof jobTemplateValue !== 'string' || jobTemplateValue === ''))
    problem(`${queue}.jobTemplate`, 'must be a non-empty string');
  if (o.runUntagged !== undefined && typeof o.runUntagged !== 'boolean')
    problem(`${queue}.runUntagged`, 'must be a boolean');
  const secretName = o.runnerTokenSecret;
  if (secretName !== undefined && (typeof secretName !== 'string' || !SECRET_NAME.test(secretName)))
    problem(`${queue}.runnerTokenSecret`, 'must be a Kubernetes Secret name');
  const agentTags = list('agentTags', (t) => t.indexOf('=') > 0);
  const runnerLabels = list('runnerLabels');
  const runnerTags = list('runnerTags');
  const minAgents = int('minAgents', 0);
  const maxAgents = int('maxAgents', 1);
  return {
    ...(minAgents === undefined ? {} : { minAgents }),
    ...(maxAgents === undefined ? {} : { maxAgents }),
    ...(jobTemplateValue === undefined ? {} : { jobTemplate: jobTemplateValue as string }),
    ...(provider === undefined ? {} : { provider: provider as Provider }),
    ...(agentTags ? { agentTags } : {}),
    ...(runnerLabels ? { runnerLabels } : {}),
    ...(runnerTags ? { runnerTags } : {}),
    ...(o.runUntagged === undefined ? {} : { runUntagged: o.runUntagged as boolean }),
    ...(secretName === undefined ? {} : { runnerTokenSecret: secretName as string }),
  };
}

/** The provider a template name implies (a custom template path implies none). */
function providerOfTemplate(template: string): Provider | undefined {
  return (PROVIDERS as readonly string[]).includes(template) ? (template as Provider) : undefined;
}

function agentsOf(queue: string, o: QueueOverride, template: string): QueueAgents {
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

function queueSettings(env: Env, queues: readonly string[], defaults: QueueSettings): Record<string, QueueSettings> {
  const text = required(env, 'QUEUE_OVERRIDES');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail('QUEUE_OVERRIDES', env.QUEUE_OVERRIDES, `valid JSON: ${spec('QUEUE_OVERRIDES').expected}`);
  }
  const problem = (where: string, what: string): never => {
    throw new ConfigError(
      'QUEUE_OVERRIDES',
      `QUEUE_OVERRIDES must be ${spec('QUEUE_OVERRIDES').expected}; at "${where}": ${what}`,
    );
  };
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return problem('', 'must be an object');
  const overrides = parsed as Record<string, unknown>;
  const unknown = Object.keys(overrides).filter((q) => !queues.includes(q));
  if (unknown.length > 0) {
    throw new ConfigError(
      'QUEUE_OVERRIDES',
      `QUEUE_OVERRIDES names queue(s) not in QUEUES: ${unknown.map((q) => JSON.stringify(q)).join(', ')}`,
    );
  }
  const settings: Record<string, QueueSettings> = {};
  for (const queue of queues) {
    const o = Object.hasOwn(overrides, queue) ? parseOverride(queue, overrides[queue], problem) : {};
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

function cluster(env: Env): ClusterAccess {
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
  if (endpoint !== undefined && !endpoint.startsWith('https://'))
    fail('EKS_CLUSTER_ENDPOINT', env.EKS_CLUSTER_ENDPOINT);
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

const GITHUB_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const GITHUB_REPO = /^[A-Za-z0-9._-]{1,100}$/;

function githubApp(env: Env, settings: Readonly<Record<string, QueueSettings>>): GitHubAppConfig | undefined {
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
      throw new ConfigError(name, `${name} must be set: ${why} (${spec(name).expected}), got nothing (unset)`);
    return value;
  };
  const appId = need('GITHUB_APP_ID');
  if (!/^(\d{1,12}|Iv[0-9A-Za-z.]{4,40})$/.test(appId)) fail('GITHUB_APP_ID', env.GITHUB_APP_ID);
  const privateKey = secret(env, 'GITHUB_APP_PRIVATE_KEY', 'GITHUB_APP_PRIVATE_KEY_PARAMETER');
  if (privateKey.kind === 'disabled') {
    throw new ConfigError(
      'GITHUB_APP_PRIVATE_KEY_PARAMETER',
      `GITHUB_APP_PRIVATE_KEY_PARAMETER (or GITHUB_APP_PRIVATE_KEY) must be set: ${why}, got nothing (unset)`,
    );
  }
  if (privateKey.kind === 'value' && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey.value)) {
    // Never echo a key, even a malformed one.
    throw new ConfigError(
      'GITHUB_APP_PRIVATE_KEY',
      'GITHUB_APP_PRIVATE_KEY must be the PEM private key of the GitHub App (-----BEGIN ... PRIVATE KEY-----), got something else',
    );
  }
  const ownerText = need('GITHUB_RUNNER_OWNER');
  const parts = ownerText.split('/');
  let owner: GitHubRunnerOwner;
  if (parts.length === 1 && GITHUB_NAME.test(parts[0] ?? '')) owner = { kind: 'org', org: ownerText };
  else if (parts.length === 2 && GITHUB_NAME.test(parts[0] ?? '') && GITHUB_REPO.test(parts[1] ?? ''))
    owner = { kind: 'repo', owner: parts[0] ?? '', repo: parts[1] ?? '' };
  else return fail('GITHUB_RUNNER_OWNER', env.GITHUB_RUNNER_OWNER);
  const webhookId = optional(env, 'GITHUB_WEBHOOK_ID') === undefined ? undefined : int(env, 'GITHUB_WEBHOOK_ID', 1);
  return {
    appId,
    privateKey,
    owner,
    ...(webhookId === undefined ? {} : { webhookId }),
    runnerGroupId: int(env, 'GITHUB_RUNNER_GROUP_ID', 1),
    apiUrl: url(env, 'GITHUB_API_URL').replace(/\/+$/, ''),
  };
}

function backoff(env: Env): BackoffConfig {
  const baseSeconds = int(env, 'AGENT_BACKOFF_BASE_SECONDS', 1, 3600);
  return {
    baseSeconds,
    maxSeconds: int(env, 'AGENT_BACKOFF_MAX_SECONDS', baseSeconds, 86_400),
    unschedulableSeconds: int(env, 'AGENT_UNSCHEDULABLE_SECONDS', 10, 86_400),
  };
}

function warmPool(env: Env): 'off' | 'adaptive' {
  const value = required(env, 'WARM_POOL').toLowerCase();
  if (value !== 'off' && value !== 'adaptive') fail('WARM_POOL', env.WARM_POOL);
  return value as 'off' | 'adaptive';
}

export function loadScalerConfig(env: Env = process.env): ScalerConfig {
  const base = common(env, true);
  const namespace = required(env, 'KUBE_NAMESPACE');
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) fail('KUBE_NAMESPACE', env.KUBE_NAMESPACE);
  const budgetSeconds = int(env, 'SCALER_BUDGET_SECONDS', 1, 890);
  const intentLeaseSeconds = int(env, 'INTENT_LEASE_SECONDS', 10, 3600);
  const github = githubApp(env, base.queueSettings);
  const served = gitlabProjects(env);
  const projects = served ? { gitlabProjects: served } : {};
  const bk = buildkiteApi(env);
  return {
    ...base,
    ledgerTable: required(env, 'LEDGER_TABLE'),
    namespace,
    jobTtlSecondsAfterFinished: int(env, 'JOB_TTL_SECONDS_AFTER_FINISHED', intentLeaseSeconds),
    jobActiveDeadlineSeconds: int(env, 'JOB_ACTIVE_DEADLINE_SECONDS', 60),
    intentLeaseSeconds,
    ledgerRetentionDays: int(env, 'LEDGER_RETENTION_DAYS', 1, 365),
    ledgerOpenMaxAgeHours: int(env, 'LEDGER_OPEN_MAX_AGE_HOURS', 1, 720),
    budgetSeconds,
    pollSeconds: int(env, 'SCALER_POLL_SECONDS', 1, 20),
    cluster: cluster(env),
    backoff: backoff(env),
    ...(github ? { github } : {}),
    gitlabApi: {
      url: url(env, 'GITLAB_API_URL').replace(/\/+$/, ''),
      token: secret(env, 'GITLAB_API_TOKEN', 'GITLAB_API_TOKEN_PARAMETER'),
    },
    warmPool: warmPool(env),
    providerReconcileSeconds: providerReconcileSeconds(env),
    ...projects,
    ...(bk ? { buildkiteApi: bk } : {}),
  };
}

function buildkiteApi(env: Env): ScalerConfig['buildkiteApi'] {
  const organization = optional(env, 'BUILDKITE_ORGANIZATION');
  const token = secret(env, 'BUILDKITE_API_TOKEN', 'BUILDKITE_API_TOKEN_PARAMETER');
  if (organization === undefined) {
    if (token.kind !== 'disabled')
      throw new ConfigError(
        'BUILDKITE_ORGANIZATION',
        `BUILDKITE_ORGANIZATION must be set with the Buildkite API token (${spec('BUILDKITE_ORGANIZATION').expected}), got nothing (unset)`,
      );
    return undefined;
  }
  if (!/^[a-z0-9][a-z0-9-]{0,99}$/.test(organization)) fail('BUILDKITE_ORGANIZATION', env.BUILDKITE_ORGANIZATION);
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

function providerReconcileSeconds(env: Env): number {
  const seconds = int(env, 'PROVIDER_RECONCILE_SECONDS', 0, 3600);
  if (seconds !== 0 && seconds < 30) fail('PROVIDER_RECONCILE_SECONDS', env.PROVIDER_RECONCILE_SECONDS);
  return seconds;
}

export interface CacheConfig {
  readonly logLevel: LogLevel;
  readonly bucket: string;
  readonly table: string;
  /** Undefined: the cache is off (404). */
  readonly tokenIssuer?: string;
  readonly jwksUrl?: string;
  readonly tokenAudience: string;
  readonly maxEntryBytes: number;
  readonly scopeMaxBytes: number;
  readonly retentionDays: number;
  readonly partBytes: number;
}

export function loadCacheConfig(env: Env = process.env): CacheConfig {
  const scopeMaxBytes = int(env, 'CACHE_SCOPE_MAX_BYTES', 1);
  const jwksUrl = optional(env, 'CACHE_JWKS_URL') === undefined ? undefined : url(env, 'CACHE_JWKS_URL');
  return {
    logLevel: logLevel(env),
    bucket: required(env, 'CACHE_BUCKET'),
    table: required(env, 'CACHE_TABLE'),
    ...(optional(env, 'CACHE_TOKEN_ISSUER') === undefined ? {} : { tokenIssuer: url(env, 'CACHE_TOKEN_ISSUER') }),
    ...(jwksUrl === undefined ? {} : { jwksUrl }),
    tokenAudience: required(env, 'CACHE_TOKEN_AUDIENCE'),
    maxEntryBytes: int(env, 'CACHE_MAX_ENTRY_BYTES', 1, scopeMaxBytes),
    scopeMaxBytes,
    retentionDays: int(env, 'CACHE_RETENTION_DAYS', 1, 365),
    partBytes: int(env, 'CACHE_PART_BYTES', 5 * 1024 * 1024, 5 * 1024 * 1024 * 1024),
  };
}

/** Markdown table of every variable, for the README (kept in sync by a test). */
export function configurationTable(): string {
  const rows = VARIABLES.map((v: VariableSpec) => {
    const def = v.required ? '**required**' : v.default !== undefined ? `\`${v.default}\`` : '(unset)';
    return `| \`${v.name}\` | ${v.functions.join(', ')} | ${def} | ${v.expected} | ${v.description} |`;
  });
  return ['| variable | read by | default | expected | what it does |', '|---|---|---|---|---|', ...rows].join('\n');
}
