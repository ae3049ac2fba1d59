/** The scaler's configuration: limits, the ledger, Kubernetes Jobs, back-off, providers' APIs. */
import {
  type BuildkiteApiConfig,
  buildkiteApi,
  type ClusterAccess,
  cluster,
  type GitHubAppConfig,
  githubApp,
} from './access.js';
import { type CommonConfig, common } from './common.js';
import type { QueueSettings } from './overrides.js';
import {
  choice,
  type Env,
  fail,
  gitlabProjects,
  int,
  Problems,
  required,
  type SecretSource,
  type Source,
  secret,
  source,
  url,
} from './read.js';
import { COMMON_VARIABLES } from './variables/common.js';
import { SCALER_VARIABLES } from './variables/scaler.js';
import { WEBHOOK_VARIABLES } from './variables/webhook.js';

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
  readonly warmPool: 'off' | 'adaptive' | 'learned';
  /** PROVIDER_RECONCILE_SECONDS: 0 = off. */
  readonly providerReconcileSeconds: number;
  /** GITLAB_PROJECTS: whose pending jobs are recovered (ids or lower-cased paths). */
  readonly gitlabProjects?: readonly string[];
  /** Set when BUILDKITE_ORGANIZATION is: whose scheduled jobs are recovered. */
  readonly buildkiteApi?: BuildkiteApiConfig;
}

const DISABLED: SecretSource = { kind: 'disabled' };

function namespace(env: Source): string {
  const value = required(env, 'KUBE_NAMESPACE');
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value) ? value : fail(env, 'KUBE_NAMESPACE');
}

function backoff(env: Source, p: Problems): BackoffConfig {
  const baseSeconds = p.take(() => int(env, 'AGENT_BACKOFF_BASE_SECONDS'), Number.NaN);
  return {
    baseSeconds,
    maxSeconds: p.take(
      () => int(env, 'AGENT_BACKOFF_MAX_SECONDS', { AGENT_BACKOFF_BASE_SECONDS: baseSeconds }),
      Number.NaN,
    ),
    unschedulableSeconds: p.take(() => int(env, 'AGENT_UNSCHEDULABLE_SECONDS'), Number.NaN),
  };
}

/** Reads and checks every scaler variable; all problems are thrown as one ConfigError. */
export function loadScalerConfig(vars: Env = process.env): ScalerConfig {
  const env = source(vars, [...COMMON_VARIABLES, ...WEBHOOK_VARIABLES, ...SCALER_VARIABLES]);
  const p = new Problems();
  const base = common(env, true, p);
  const kubeNamespace = p.take(() => namespace(env), '');
  const budgetSeconds = p.take(() => int(env, 'SCALER_BUDGET_SECONDS'), Number.NaN);
  const intentLeaseSeconds = p.take(() => int(env, 'INTENT_LEASE_SECONDS'), Number.NaN);
  const github = githubApp(env, base.queueSettings, p);
  const served = p.take(() => gitlabProjects(env), undefined);
  const bk = p.take(() => buildkiteApi(env), undefined);
  const config: ScalerConfig = {
    ...base,
    ledgerTable: p.take(() => required(env, 'LEDGER_TABLE'), ''),
    namespace: kubeNamespace,
    jobTtlSecondsAfterFinished: p.take(
      () => int(env, 'JOB_TTL_SECONDS_AFTER_FINISHED', { INTENT_LEASE_SECONDS: intentLeaseSeconds }),
      Number.NaN,
    ),
    jobActiveDeadlineSeconds: p.take(() => int(env, 'JOB_ACTIVE_DEADLINE_SECONDS'), Number.NaN),
    intentLeaseSeconds,
    ledgerRetentionDays: p.take(() => int(env, 'LEDGER_RETENTION_DAYS'), Number.NaN),
    ledgerOpenMaxAgeHours: p.take(() => int(env, 'LEDGER_OPEN_MAX_AGE_HOURS'), Number.NaN),
    budgetSeconds,
    pollSeconds: p.take(() => int(env, 'SCALER_POLL_SECONDS'), Number.NaN),
    cluster: p.take<ClusterAccess>(() => cluster(env), { kind: 'kubeconfig-file', path: '' }),
    backoff: backoff(env, p),
    ...(github ? { github } : {}),
    gitlabApi: {
      url: p.take(() => url(env, 'GITLAB_API_URL').replace(/\/+$/, ''), ''),
      token: p.take(() => secret(env, 'GITLAB_API_TOKEN', 'GITLAB_API_TOKEN_PARAMETER'), DISABLED),
    },
    warmPool: p.take(() => choice<'off' | 'adaptive' | 'learned'>(env, 'WARM_POOL'), 'off'),
    providerReconcileSeconds: p.take(() => int(env, 'PROVIDER_RECONCILE_SECONDS'), Number.NaN),
    ...(served ? { gitlabProjects: served } : {}),
    ...(bk ? { buildkiteApi: bk } : {}),
  };
  p.done();
  return config;
}
