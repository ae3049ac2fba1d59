/**
 * Stage 2a, provider reconcile: no CI job is lost when a webhook delivery fails. GitHub does not
 * redeliver a failed delivery, GitLab does not retry one, and our webhook answers 503 while SQS
 * is down, so once per period (PROVIDER_RECONCILE_SECONDS) the scaler asks each provider it has
 * credentials for what it may have missed, with a bounded number of API calls:
 *  - GitHub (GITHUB_WEBHOOK_ID): at most `maxPages` pages of the hook's deliveries, then at most
 *    `maxRedeliveries` redeliveries (core/providers/recovery.ts pickRedeliveries). The
 *    redelivered request goes through the webhook like any other and reaches the ledger by SQS.
 *  - GitLab (GITLAB_PROJECTS, GITLAB_API_TOKEN): one request per served project, its pending
 *    jobs; those a queue can take become `scheduled` events applied to the ledger here, before
 *    this tick's counts are read.
 *  - Buildkite (BUILDKITE_ORGANIZATION, BUILDKITE_API_TOKEN): at most 2 pages of the
 *    organisation's scheduled/running builds; their jobs still `scheduled` that a queue can take
 *    (in BUILDKITE_CLUSTERS when set) become `scheduled` events, as GitLab's.
 * Every event has the id the webhook gives it, and the ledger only moves a job forward: a job
 * recovered twice, or recovered and delivered, is one pending job, one agent.
 * A provider that fails is logged and tried again next period; it never fails the tick.
 */

import type { BuildkiteBuildsApi } from '../adapters/buildkite/builds-api.js';
import type { RunnersApi } from '../adapters/github/runners-api.js';
import type { GitlabJobsApi } from '../adapters/gitlab/jobs-api.js';
import type { JobEvent, Provider } from '../core/job-event.js';
import {
  buildkiteScheduledEvents,
  type DeliveryRecord,
  gitlabPendingEvents,
  pickRedeliveries,
} from '../core/providers/recovery.js';
import type { Routing } from '../core/routing.js';
import { mapLimit } from '../shared/concurrency.js';
import { describeError } from '../shared/errors.js';
import type { ScalerPorts } from './ports.js';
import { type TickError, type TickErrors, tickError } from './tick-error.js';

/** What one provider recovered in one run. */
export interface Recovery {
  readonly provider: Provider;
  /** Events to apply to the ledger now. */
  readonly events: readonly JobEvent[];
  /** Deliveries the provider was asked to make again (they come back through the webhook). */
  readonly redelivered: number;
  /** API requests made. */
  readonly calls: number;
}

export interface RecoverySource {
  readonly provider: Provider;
  recover(now: number): Promise<Recovery>;
}

export interface ProviderReconciler {
  /** Runs every source when the period has passed since the last run; undefined when not due. */
  run(now: number): Promise<{ recoveries: Recovery[]; errors: TickError[] } | undefined>;
}

export function createProviderReconciler(options: {
  readonly sources: readonly RecoverySource[];
  readonly periodMs: number;
}): ProviderReconciler {
  let last = Number.NEGATIVE_INFINITY;
  return {
    async run(now) {
      if (options.sources.length === 0 || now - last < options.periodMs) return undefined;
      last = now;
      const recoveries: Recovery[] = [];
      const errors: TickError[] = [];
      await Promise.all(
        options.sources.map(async (source) => {
          try {
            recoveries.push(await source.recover(now));
          } catch (error) {
            errors.push(tickError('providers', `${source.provider} reconcile`, error));
          }
        }),
      );
      return { recoveries, errors };
    },
  };
}

/** GitHub: redeliver the hook's lost `workflow_job` deliveries (GitHub's documented recipe). */
export function githubRedeliveries(options: {
  readonly api: Pick<RunnersApi, 'listHookDeliveries' | 'redeliver'>;
  readonly hookId: number;
  /** How far back deliveries are looked at (default 1 h). */
  readonly lookbackMs?: number;
  /** Pages of 100 deliveries read per run at most (default 3). */
  readonly maxPages?: number;
  /** Redeliveries asked per run at most (default 10). */
  readonly maxRedeliveries?: number;
  /** A guid asked for is not asked for again before this (default 5 min). */
  readonly askAgainMs?: number;
}): RecoverySource {
  const lookbackMs = options.lookbackMs ?? 60 * 60_000;
  const maxPages = options.maxPages ?? 3;
  const asked = new Map<string, number>();
  const { api, hookId } = options;
  return {
    provider: 'github',
    async recover(now) {
      if (!api.listHookDeliveries || !api.redeliver) throw new Error('the GitHub API client cannot list deliveries');
      const deliveries: DeliveryRecord[] = [];
      let calls = 0;
      let cursor: string | undefined;
      for (let page = 0; page < maxPages; page++) {
        const result = await api.listHookDeliveries(hookId, cursor);
        calls++;
        deliveries.push(...result.deliveries);
        const oldest = Math.min(...result.deliveries.map((d) => Date.parse(d.deliveredAt)).filter(Number.isFinite));
        cursor = result.next;
        if (!cursor || result.deliveries.length === 0 || oldest < now - lookbackMs) break;
      }
      for (const [guid, at] of asked) if (now - at > lookbackMs) asked.delete(guid);
      const picked = pickRedeliveries(deliveries, {
        now,
        lookbackMs,
        asked,
        askAgainMs: options.askAgainMs ?? 5 * 60_000,
        max: options.maxRedeliveries ?? 10,
      });
      let redelivered = 0;
      for (const d of picked) {
        await api.redeliver(hookId, d.id);
        calls++;
        redelivered++;
        asked.set(d.guid, now);
      }
      return { provider: 'github', events: [], redelivered, calls };
    },
  };
}

/** GitLab: the served projects' pending jobs, as `scheduled` events. */
export function gitlabPending(options: {
  readonly api: Pick<GitlabJobsApi, 'pendingJobs'>;
  readonly projects: readonly string[];
  readonly routing: Routing;
  /** Requests in flight at once (default 4). */
  readonly concurrency?: number;
}): RecoverySource {
  return {
    provider: 'gitlab',
    async recover(now) {
      const { api } = options;
      if (!api.pendingJobs) throw new Error('the GitLab API client cannot list pending jobs');
      const pendingJobs = api.pendingJobs.bind(api);
      const lists = await mapLimit(options.projects, options.concurrency ?? 4, async (project) =>
        gitlabPendingEvents(project, await pendingJobs(project), options.routing, new Date(now)),
      );
      return { provider: 'gitlab', events: lists.flat(), redelivered: 0, calls: options.projects.length };
    },
  };
}

/** Buildkite: the scheduled jobs of the organisation's scheduled/running builds. */
export function buildkiteScheduled(options: {
  readonly api: BuildkiteBuildsApi;
  readonly routing: Routing;
  /** BUILDKITE_CLUSTERS (lower-cased); undefined: every cluster. */
  readonly clusters?: readonly string[];
}): RecoverySource {
  return {
    provider: 'buildkite',
    async recover(now) {
      const { jobs, calls } = await options.api.scheduledJobs();
      const events = buildkiteScheduledEvents(jobs, options.routing, options.clusters, new Date(now));
      return { provider: 'buildkite', events, redelivered: 0, calls };
    },
  };
}

/**
 * The stage: when due, runs the providers' recoveries and applies the events they give to the
 * ledger. Its failures are added to `errors` and logged; the tick goes on.
 */
export async function reconcileProviders(ports: ScalerPorts, errors: TickErrors): Promise<void> {
  const reconciler = ports.providers;
  if (!reconciler) return;
  const now = ports.now();
  try {
    const result = await reconciler.run(now);
    if (!result) return;
    errors.push(...result.errors);
    for (const e of result.errors) ports.log.warn('provider reconcile failed', { error: e.message });
    const events = result.recoveries.flatMap((r) => r.events);
    const outcomes = events.length > 0 ? await ports.ledger.apply(events, new Date(now)) : [];
    const failed = outcomes.filter((o) => o.result === 'failed');
    if (failed.length > 0)
      errors.push({
        stage: 'providers',
        retryable: true,
        cause: failed,
        message: `provider reconcile: ${failed.length} recovered event(s) not applied`,
      });
    ports.log.info('provider reconcile', {
      providers: result.recoveries.map((r) => ({
        provider: r.provider,
        calls: r.calls,
        redelivered: r.redelivered,
        events: r.events.length,
      })),
      recovered: outcomes.filter((o) => o.result === 'applied').length,
      known: outcomes.filter((o) => o.result === 'noop').length,
      failed: failed.length,
    });
  } catch (error) {
    errors.push(tickError('providers', 'provider reconcile', error));
    ports.log.warn('provider reconcile failed', { error: describeError(error) });
  }
}
