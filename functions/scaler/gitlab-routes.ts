/**
 * Routes GitLab events to a queue by the job's real tags, in the scaler's drain.
 *
 * The Job Hook carries no job tags, so the webhook records a GitLab event without a queue and
 * the scaler asks GitLab (`GET /projects/:id/jobs/:job_id`, `tag_list`) once per CI job, keeps
 * the answer in the ledger table (RouteStore) and gives every later event of the job the same
 * queue. A route is a function of the job's tags and this process's configuration, so it never
 * changes while this process lives: the routes seen are also kept in memory (an LRU of
 * `cacheSize` jobs), and the later events of a job cost no request at all in the same process.
 * The jobs of a batch that are not in memory are read from the store together (one BatchGetItem
 * per 100 jobs) and the routes learned from GitLab written together (one BatchWriteItem per 25).
 * Why here and not in the webhook: a lookup that fails (GitLab down, 429, a bad token)
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

import { LRUCache } from 'lru-cache';
import type { GitlabJobsApi } from '../adapters/gitlab/jobs-api.js';
import { GitlabApiError } from '../adapters/gitlab/jobs-api.js';
import { isRouted, jobKey, type QueuedJobEvent } from '../core/job-event.js';
import { type Routing, routeGitlab } from '../core/routing.js';
import type { RouteJob, RouteStore, StoredRoute } from '../core/stores.js';
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
  /** CI jobs whose route is kept in memory, least recently used dropped first (default 10,000). */
  readonly cacheSize?: number;
}

export interface GitlabRouter extends EventRouter {
  /** Lookups made (GitLab API calls), for tests and the report. */
  readonly lookups: number;
}

const DEFAULT_PAUSE_MS = 5_000;
const MAX_PAUSE_MS = 15 * 60_000;
const DEFAULT_CACHE_SIZE = 10_000;

type Failed = { failed: string; retryAfterMs?: number };

/** The events of one CI job in a batch: their indexes, and the first of them. */
interface Job {
  readonly first: QueuedJobEvent;
  readonly members: number[];
}

export function createGitlabRouter(options: GitlabRouterOptions): GitlabRouter {
  let pausedUntil = 0;
  let failures = 0;
  let lookups = 0;
  const base = options.pauseBaseMs ?? DEFAULT_PAUSE_MS;
  const known = new LRUCache<string, StoredRoute>({ max: options.cacheSize ?? DEFAULT_CACHE_SIZE });

  /** Asks GitLab for the job's tags (not for a job whose route is stored). */
  async function lookUp(event: QueuedJobEvent): Promise<StoredRoute | Failed> {
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
    return 'queue' in routed ? { queue: routed.queue } : { unmet: `tags ${JSON.stringify(tags)}: ${routed.unmet}` };
  }

  return {
    get lookups() {
      return lookups;
    },
    async resolve(events) {
      const outcomes = new Array<RouteOutcome>(events.length);
      // One lookup per CI job of the batch, whatever number of its events arrived together.
      const byJob = new Map<string, Job>();
      events.forEach((event, index) => {
        if (isRouted(event)) {
          outcomes[index] = { event };
          return;
        }
        if (event.provider !== 'gitlab') {
          outcomes[index] = { failed: `${event.provider} event without a queue` };
          return;
        }
        const job = byJob.get(event.jobId);
        if (job) job.members.push(index);
        else byJob.set(event.jobId, { first: event, members: [index] });
      });
      const settle = (job: Job, route: StoredRoute | Failed) => {
        for (const index of job.members) {
          const event = events[index];
          if (!event) continue;
          outcomes[index] =
            'queue' in route
              ? { event: { ...event, queue: route.queue } }
              : 'unmet' in route
                ? { ignored: route.unmet }
                : route;
        }
      };
      // 1. Routes this process already knows: no request.
      const unknown: Job[] = [];
      for (const job of byJob.values()) {
        const route = known.get(jobKey(job.first));
        if (route) settle(job, route);
        else unknown.push(job);
      }
      if (unknown.length === 0) return outcomes;
      // 2. Routes stored by an earlier process: one batched, strongly consistent read.
      let stored: (StoredRoute | undefined)[];
      try {
        stored = await options.store.getMany(unknown.map((job) => job.first));
      } catch (e) {
        for (const job of unknown) {
          settle(job, { failed: `route of gitlab job ${job.first.jobId} unreadable: ${describeError(e)}` });
        }
        return outcomes;
      }
      const missing: Job[] = [];
      unknown.forEach((job, i) => {
        const route = stored[i];
        if (route) {
          known.set(jobKey(job.first), route);
          settle(job, route);
        } else missing.push(job);
      });
      // 3. The others: ask GitLab, then store what was learned in one batched write.
      const learned: { job: RouteJob; route: StoredRoute }[] = [];
      await mapLimit(missing, options.concurrency ?? 8, async (job) => {
        const route = await lookUp(job.first);
        if (!('failed' in route)) {
          known.set(jobKey(job.first), route);
          learned.push({ job: job.first, route });
        }
        settle(job, route);
      });
      // Not stored (the store failed): another process looks the job up again, and finds the
      // same route; this one keeps it in memory.
      if (learned.length > 0) await options.store.putMany(learned, new Date(options.now())).catch(() => undefined);
      return outcomes;
    },
  };
}
