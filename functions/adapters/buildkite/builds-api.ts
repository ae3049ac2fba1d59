/**
 * Buildkite REST API v2, the one call the provider reconcile makes: the organisation's builds that
 * are scheduled or running (`GET /v2/organizations/{org}/builds?state[]=scheduled&state[]=running
 * &per_page=N`, Buildkite's "List all builds"), whose `jobs` carry their `state`, `type` and
 * `agent_query_rules`. Authenticated with an API access token with the `read_builds` scope
 * (`Authorization: Bearer`). Plain fetch, bounded by a timeout and `maxPages` (pagination by
 * the `Link` header's rel="next").
 */
import type { BuildkiteScheduledJob } from '../../core/providers/recovery.js';

export class BuildkiteApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'BuildkiteApiError';
  }
}

export interface BuildkiteBuildsApi {
  /** Jobs of scheduled/running builds still in state `scheduled`, and the requests made. */
  scheduledJobs(): Promise<{ jobs: BuildkiteScheduledJob[]; calls: number }>;
}

export interface BuildkiteBuildsApiOptions {
  /** e.g. https://api.buildkite.com/v2 (no trailing slash). */
  readonly url: string;
  readonly organization: string;
  readonly token: () => Promise<string>;
  readonly fetch?: typeof fetch;
  /** Per request (default 5 s). */
  readonly timeoutMs?: number;
  /** Pages of `perPage` builds read at most (default 2 of 100). */
  readonly maxPages?: number;
  readonly perPage?: number;
}

const MAX_BODY = 8 * 1024 * 1024;

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function createBuildkiteBuildsApi(options: BuildkiteBuildsApiOptions): BuildkiteBuildsApi {
  const doFetch = options.fetch ?? fetch;
  const perPage = Math.min(100, Math.max(1, options.perPage ?? 100));
  return {
    async scheduledJobs() {
      const jobs: BuildkiteScheduledJob[] = [];
      let url: string | undefined =
        `${options.url}/organizations/${encodeURIComponent(options.organization)}/builds?state[]=scheduled&state[]=running&per_page=${perPage}`;
      let calls = 0;
      for (let page = 0; url && page < (options.maxPages ?? 2); page++) {
        let response: Response;
        try {
          response = await doFetch(url, {
            headers: { authorization: `Bearer ${await options.token()}`, accept: 'application/json' },
            signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
          });
        } catch (e) {
          throw new BuildkiteApiError(`GET builds: ${e instanceof Error ? e.message : String(e)}`, 0);
        } finally {
          calls++;
        }
        if (!response.ok) {
          await response.body?.cancel().catch(() => undefined);
          const hint =
            response.status === 401 || response.status === 403
              ? ' (BUILDKITE_API_TOKEN needs the read_builds scope on the organisation)'
              : '';
          throw new BuildkiteApiError(`GET builds: HTTP ${response.status}${hint}`, response.status);
        }
        const body = await response.text();
        if (body.length > MAX_BODY) throw new BuildkiteApiError('GET builds: response too large', 502);
        let builds: unknown;
        try {
          builds = JSON.parse(body);
        } catch {
          throw new BuildkiteApiError('GET builds: response is not JSON', 502);
        }
        if (!Array.isArray(builds)) throw new BuildkiteApiError('GET builds: response is not a list', 502);
        for (const build of builds as Record<string, unknown>[]) {
          const pipeline = (build?.pipeline ?? {}) as Record<string, unknown>;
          for (const job of Array.isArray(build?.jobs) ? (build.jobs as Record<string, unknown>[]) : []) {
            const rules = job?.agent_query_rules;
            if (!job || typeof job.id !== 'string' || job.state !== 'scheduled' || job.type !== 'script') continue;
            if (!Array.isArray(rules) || rules.some((r) => typeof r !== 'string')) continue;
            const clusterId = text(job.cluster_id) ?? text(pipeline.cluster_id);
            const webUrl = text(job.web_url);
            const scheduledAt = text(job.scheduled_at) ?? text(job.runnable_at) ?? text(job.created_at);
            const slug = text(pipeline.slug);
            jobs.push({
              id: job.id,
              agentQueryRules: rules as string[],
              ...(clusterId ? { clusterId } : {}),
              ...(scheduledAt ? { scheduledAt } : {}),
              ...(webUrl ? { webUrl } : {}),
              ...(slug ? { pipeline: slug } : {}),
              ...(typeof build.number === 'number' ? { build: String(build.number) } : {}),
            });
          }
        }
        url = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get('link') ?? '')?.[1];
      }
      return { jobs, calls };
    },
  };
}
