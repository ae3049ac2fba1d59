/**
 * The scaler's side of each provider: what it wires from configuration, I/O-doing adapters
 * included (the pure side is the descriptor, core/providers/registry.ts). A Record over the
 * Provider union, so a provider without an entry does not compile; an entry may be empty.
 *  - router: gives the provider's events without a queue theirs (GitLab: the job's tag_list).
 *  - hooks: steps around the creation of the Jobs of the queues it claims (GitHub: JIT runners).
 *  - recovery: finds the jobs whose webhook delivery was lost (PROVIDER_RECONCILE_SECONDS).
 * Walk-through: docs/adding-a-provider.md.
 */
import type { V1Job } from '@kubernetes/client-node';
import { createBuildkiteBuildsApi } from '../adapters/buildkite/builds-api.js';
import { DynamoRouteStore } from '../adapters/dynamodb/route-store.js';
import { JitRunners, usesJitConfig } from '../adapters/github/jit-runners.js';
import { createRunnersApi } from '../adapters/github/runners-api.js';
import { createGitlabJobsApi } from '../adapters/gitlab/jobs-api.js';
import { SecretStore } from '../adapters/secrets/secret-store.js';
import { PROVIDERS, type Provider } from '../core/job-event.js';
import { defaultRunnerLabels } from '../core/routing.js';
import { ConfigError, type ScalerConfig } from '../shared/config.js';
import { createGitlabRouter } from './gitlab-routes.js';
import type { ClusterPort, DispatchHooks, EventRouter, PerProvider, ScalerLog } from './ports.js';
import { buildkiteScheduled, githubRedeliveries, gitlabPending, type RecoverySource } from './provider-reconcile.js';

/** What the wiring of one provider starts from. */
export interface WiringContext {
  readonly config: ScalerConfig;
  /** Each served queue's agent Job template, loaded and validated. */
  readonly templates: Readonly<Record<string, V1Job>>;
  readonly cluster: ClusterPort;
  readonly log: ScalerLog;
}

/** What the scaler runs for one provider; every part optional. */
export interface ScalerProvider {
  readonly router?: EventRouter;
  readonly hooks?: DispatchHooks;
  readonly recovery?: RecoverySource;
}

export interface ScalerProviderWiring {
  /** Queues whose Jobs this provider's hooks serve whatever their declared provider (optional). */
  readonly claims?: (config: ScalerConfig, templates: Readonly<Record<string, V1Job>>) => readonly string[];
  /** Refuses a configuration it cannot serve, before anything is reached (optional). */
  readonly check?: (config: ScalerConfig, claimed: readonly string[]) => void;
  readonly wire: (context: WiringContext, claimed: readonly string[]) => ScalerProvider;
}

const recovering = (c: ScalerConfig) => c.providerReconcileSeconds > 0;

const buildkite: ScalerProviderWiring = {
  wire({ config: c }) {
    const bk = c.buildkiteApi;
    if (!recovering(c) || !bk) return {};
    const token = new SecretStore({ buildkiteApi: bk.token });
    const api = createBuildkiteBuildsApi({
      url: bk.url,
      organization: bk.organization,
      token: () => token.get('buildkiteApi'),
    });
    return {
      recovery: buildkiteScheduled({ api, routing: c.routing, ...(bk.clusters ? { clusters: bk.clusters } : {}) }),
    };
  },
};

const github: ScalerProviderWiring = {
  // Queues whose template mounts the jitconfig volume: just-in-time runners.
  claims: (_c, templates) => Object.keys(templates).filter((q) => templates[q] && usesJitConfig(templates[q])),
  check(c, claimed) {
    if (claimed.length === 0 || c.github) return;
    throw new ConfigError(
      'GITHUB_APP_ID',
      `GITHUB_APP_ID, GITHUB_RUNNER_OWNER and GITHUB_APP_PRIVATE_KEY(_PARAMETER) must be set: the Job template of queue(s) ${claimed
        .map((q) => JSON.stringify(q))
        .join(', ')} mounts the jitconfig volume (just-in-time GitHub runners)`,
    );
  },
  wire({ config: c, cluster, log }, claimed) {
    const app = c.github;
    if (!app) return {};
    const secrets = new SecretStore({ githubAppKey: app.privateKey });
    // One client (one installation token) for the JIT runners and the redeliveries.
    const api = createRunnersApi({
      appId: app.appId,
      privateKey: () => secrets.get('githubAppKey'),
      owner: app.owner,
      apiUrl: app.apiUrl,
    });
    const jit = new Set(claimed);
    const hooks =
      jit.size > 0
        ? new JitRunners({
            api,
            cluster,
            runnerGroupId: app.runnerGroupId,
            isJitQueue: (queue) => jit.has(queue),
            labelsFor: (queue) => c.queueSettings[queue]?.agents.runnerLabels ?? defaultRunnerLabels(queue),
            deployment: c.ledgerTable,
            log,
          })
        : undefined;
    const recovery =
      recovering(c) && app.webhookId !== undefined ? githubRedeliveries({ api, hookId: app.webhookId }) : undefined;
    return { ...(hooks ? { hooks } : {}), ...(recovery ? { recovery } : {}) };
  },
};

const gitlab: ScalerProviderWiring = {
  wire({ config: c }) {
    const credentials = new SecretStore({ gitlabApi: c.gitlabApi.token });
    const api = credentials.enabled('gitlabApi')
      ? createGitlabJobsApi({
          url: c.gitlabApi.url,
          token: () => credentials.get('gitlabApi'),
          refreshToken: () => credentials.refresh('gitlabApi'),
        })
      : undefined;
    const router = createGitlabRouter({
      api,
      store: new DynamoRouteStore({
        tableName: c.ledgerTable,
        retentionSeconds: (c.ledgerRetentionDays * 24 + c.ledgerOpenMaxAgeHours) * 3600,
      }),
      routing: c.routing,
      now: Date.now,
    });
    const projects = c.gitlabProjects ?? [];
    const recovery =
      recovering(c) && api && projects.length > 0 ? gitlabPending({ api, projects, routing: c.routing }) : undefined;
    return { router, ...(recovery ? { recovery } : {}) };
  },
};

/** The scaler's wiring of every provider. */
export const SCALER_PROVIDERS = { buildkite, github, gitlab } as const satisfies Readonly<
  Record<Provider, ScalerProviderWiring>
>;

/** Queues claimed by a provider's hooks, per provider (checked before anything is reached). */
export function claimedQueues(
  c: ScalerConfig,
  templates: Readonly<Record<string, V1Job>>,
): Readonly<Record<Provider, readonly string[]>> {
  const claimed = Object.fromEntries(
    PROVIDERS.map((p) => [p, SCALER_PROVIDERS[p].claims?.(c, templates) ?? []]),
  ) as Record<Provider, readonly string[]>;
  for (const p of PROVIDERS) SCALER_PROVIDERS[p].check?.(c, claimed[p]);
  return claimed;
}

/** Every provider wired: routers and hooks per provider, the recovery sources, and each queue's provider. */
export function wireProviders(
  context: WiringContext,
  claimed: Readonly<Record<Provider, readonly string[]>>,
): {
  routers: PerProvider<EventRouter>;
  hooks: PerProvider<DispatchHooks>;
  sources: RecoverySource[];
  queueProvider: (queue: string) => Provider | undefined;
} {
  const routers: Partial<Record<Provider, EventRouter>> = {};
  const hooks: Partial<Record<Provider, DispatchHooks>> = {};
  const sources: RecoverySource[] = [];
  for (const p of PROVIDERS) {
    const wired = SCALER_PROVIDERS[p].wire(context, claimed[p]);
    if (wired.router) routers[p] = wired.router;
    if (wired.hooks) hooks[p] = wired.hooks;
    if (wired.recovery) sources.push(wired.recovery);
  }
  const settings = context.config.queueSettings;
  const queueProvider = (queue: string): Provider | undefined =>
    PROVIDERS.find((p) => claimed[p].includes(queue)) ?? settings[queue]?.agents.provider;
  return { routers, hooks, sources, queueProvider };
}
