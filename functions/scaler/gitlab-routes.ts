/**
 * Routes GitLab events to a queue by the job's real tags, in the scaler's drain.
 *
 * The Job Hook carries no job tags, so the webhook records a GitLab event without a queue and
 * the scaler asks GitLab (`GET /projects/:id/jobs/:job_id`, `tag_list`) once per CI job, keeps
 * the answer in the ledger table (RouteStore) and gives every later event of the job the same
 * queue. Why here and not in the webhook: a lookup that fails (GitLab down, 429, a bad token)
 * must lose nothing. In the drain the event simply stays in SQS and is retried on a later tick
 * (the dead-letter queue after maxReceiveCount); the webhook could only answer GitLab with an
 * error, and GitLab does not retry a failed delivery (it disables a hook that keeps failing).
 * The drain also batches: one lookup per CI job however many of its events arrive together,
 * and a 429/5xx pauses lookups (Retry-After, at least 5 s doubling per consecutive failure up
 * to 15 min) instead of hammering the API; the messages it could not route are hidden until the
 * pause ends (ChangeMessageVisibility), so each delivery counted towards maxReceiveCount is a
 * real attempt.
 * Never routed to a guess: an event whose tags are unknown is not counted anywhere.
 */

import type { GitlabJobsApi } from '../adapters/gitlab/jobs-api.js';
import { GitlabApiError } from '../adapters/gitlab/jobs-api.js';
import { isRouted, type QueuedJobEvent } from '../core/job-event.js';
import { type Routing, routeGitlab } from '../core/routing.js';
import type { RouteStore, StoredRoute } from '../core/stores.js';
import { mapLimit } from '../shared/concurrency.js';
import { describeError } from '../shared/errors.js';
import type { EventRouter, RouteOutcome } from './ports.js';

export interface GitlabRouterOptions {
  /** Undefined when no GITLAB_API_TOKEN(_PARAMETER) is configured. */
  readonly api: GitlabJobsApi | undefined;
  readonly store: RouteStore;
  readonly routing: Routing;
  readonly now: () => number;
  /** Lookups in flight at once (default 8). */
  readonly concurrency?: number;
  /**
   * First pause after the API failed without a Retry-After (default 5 s); it doubles with each
   * consecutive failure, up to 15 minutes, and a success resets it.
   */
  readonly pauseBaseMs?: number;
}

export interface GitlabRouter extends EventRouter {
  /** Lookups made (GitLab API calls), for tests and the report. */
  readonly lookups: number;
}

const DEFAULT_PAUSE_MS = 5_000;
const MAX_PAUSE_MS = 15 * 60_000;

export function createGitlabRouter(options: GitlabRouterOptions): GitlabRouter {
  let pausedUntil = 0;
  let failures = 0;
  let lookups = 0;
  const base = options.pauseBaseMs ?? DEFAULT_PAUSE_MS;

  async function routeOf(event: QueuedJobEvent): Promise<StoredRoute | { failed: string; retryAfterMs?: number }> {
    let stored: StoredRoute | undefined;
    try {
      stored = await options.store.get(event);
    } catch (e) {
      return { failed: `route of gitlab job ${event.jobId} unreadable: ${describeError(e)}` };
    }
    if (stored) return stored;
    if (!options.api) {
      return { failed: 'GITLAB_API_TOKEN or GITLAB_API_TOKEN_PARAMETER is not set: the job tags cannot be looked up' };
    }
    const projectId = event.gitlabProjectId;
    if (projectId === undefined) return { failed: 'gitlab event without gitlabProjectId' };
    if (options.now() < pausedUntil) {
      return {
        failed: `GitLab API paused after a failure until ${new Date(pausedUntil).toISOString()}`,
        retryAfterMs: pausedUntil - options.now(),
      };
    }
    let tags: string[];
    try {
      lookups++;
      tags = await options.api.jobTags(projectId, event.jobId);
      failures = 0;
    } catch (e) {
      if (e instanceof GitlabApiError && e.unavailable) {
        failures++;
        const backoff = Math.min(MAX_PAUSE_MS, base * 2 ** Math.min(failures - 1, 20));
        pausedUntil = Math.max(pausedUntil, options.now() + Math.max(e.retryAfterMs ?? 0, backoff));
        return { failed: `job tags lookup failed: ${describeError(e)}`, retryAfterMs: pausedUntil - options.now() };
      }
      return { failed: `job tags lookup failed: ${describeError(e)}` };
    }
    const routed = routeGitlab(tags, options.routing);
    const route: StoredRoute =
      'queue' in routed ? { queue: routed.queue } : { unmet: `tags ${JSON.stringify(tags)}: ${routed.unmet}` };
    // Not kept: the next event of the job looks it up again, and finds the same route.
    await options.store.put(event, route, new Date(options.now())).catch(() => undefined);
    return route;
  }

  return {
    get lookups() {
      return lookups;
    },
    async resolve(events) {
      const outcomes = new Array<RouteOutcome>(events.length);
      // One lookup per CI job of the batch, whatever number of its events arrived together.
      const byJob = new Map<string, number[]>();
      events.forEach((event, index) => {
        if (isRouted(event)) {
          outcomes[index] = { event };
          return;
        }
        if (event.provider !== 'gitlab') {
          outcomes[index] = { failed: `${event.provider} event without a queue` };
          return;
        }
        const members = byJob.get(event.jobId);
        if (members) members.push(index);
        else byJob.set(event.jobId, [index]);
      });
      await mapLimit([...byJob.values()], options.concurrency ?? 8, async (members) => {
        const first = events[members[0] ?? 0];
        if (!first) return;
        const route = await routeOf(first);
        for (const index of members) {
          const event = events[index];
          if (!event) continue;
          outcomes[index] =
            'queue' in route
              ? { event: { ...event, queue: route.queue } }
              : 'unmet' in route
                ? { ignored: route.unmet }
                : route;
        }
      });
      return outcomes;
    },
  };
}
