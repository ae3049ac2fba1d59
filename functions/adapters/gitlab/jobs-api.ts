/**
 * GitLab REST API v4, the one call the scaler makes: `GET /projects/:id/jobs/:job_id`, for the
 * job's `tag_list` (the Job Hook does not carry the job's tags). Authenticated with a token that
 * has the `read_api` scope (`PRIVATE-TOKEN` header). Plain fetch, bounded by a timeout; every
 * failure is a GitlabApiError saying whether and when to try again.
 */
import type { GitlabPendingJob } from '../../core/providers/recovery.js';

export class GitlabApiError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when no response arrived (network, timeout). */
    readonly status: number,
    /** When the API asked us to come back (429 Retry-After), in milliseconds from now. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'GitlabApiError';
  }

  /** The API is unavailable or limiting us: no call should be made for a while. */
  get unavailable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export interface GitlabJobsApi {
  /** The job's tags (`tag_list`, possibly empty). Throws GitlabApiError. */
  jobTags(projectId: string, jobId: string): Promise<string[]>;
  /**
   * The project's pending jobs, at most `perPage` (one request: `GET /projects/:id/jobs?
   * scope[]=pending&per_page=N`, newest first as GitLab lists them). Throws GitlabApiError.
   */
  pendingJobs?(projectId: string, perPage?: number): Promise<GitlabPendingJob[]>;
}

export interface GitlabJobsApiOptions {
  /** e.g. https://gitlab.com/api/v4 (no trailing slash). */
  readonly url: string;
  /** The read_api token (cached by the caller's secret store). */
  readonly token: () => Promise<string>;
  /** Called after a 401: a rotated token is fetched again; returns the new one, if any. */
  readonly refreshToken?: () => Promise<string | undefined>;
  readonly fetch?: typeof fetch;
  /** Per request (default 5 s). */
  readonly timeoutMs?: number;
}

const MAX_BODY = 1024 * 1024;

function retryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds, 3600) * 1000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, Math.min(at - Date.now(), 3_600_000)) : undefined;
}

export function createGitlabJobsApi(options: GitlabJobsApiOptions): GitlabJobsApi {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 5_000;

  async function get(path: string, token: string): Promise<Response> {
    try {
      return await doFetch(`${options.url}${path}`, {
        headers: { 'private-token': token, accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new GitlabApiError(`GET ${path}: ${e instanceof Error ? e.message : String(e)}`, 0);
    }
  }

  /** GET path as JSON, with one retry after a 401 with a refreshed token. */
  async function getJson(path: string): Promise<unknown> {
    let response = await get(path, await options.token());
    if (response.status === 401 && options.refreshToken) {
      const fresh = await options.refreshToken();
      if (fresh !== undefined) response = await get(path, fresh);
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      const hint =
        response.status === 401 || response.status === 403
          ? ' (GITLAB_API_TOKEN needs the read_api scope and access to the project)'
          : response.status === 404
            ? ' (no such project or job, or the token cannot see the project)'
            : '';
      throw new GitlabApiError(
        `GET ${path}: HTTP ${response.status}${hint}`,
        response.status,
        retryAfter(response.headers.get('retry-after')),
      );
    }
    const text = await response.text();
    if (text.length > MAX_BODY) throw new GitlabApiError(`GET ${path}: response too large`, 502);
    try {
      return JSON.parse(text);
    } catch {
      throw new GitlabApiError(`GET ${path}: response is not JSON`, 502);
    }
  }

  return {
    async pendingJobs(projectId, perPage = 100) {
      const path = `/projects/${encodeURIComponent(projectId)}/jobs?scope[]=pending&per_page=${Math.min(100, Math.max(1, perPage))}`;
      const body = await getJson(path);
      if (!Array.isArray(body)) throw new GitlabApiError(`GET ${path}: response is not a list of jobs`, 502);
      return body.flatMap((j): GitlabPendingJob[] => {
        if (typeof j !== 'object' || j === null) return [];
        const o = j as Record<string, unknown>;
        const tags = o.tag_list;
        if (typeof o.id !== 'number' || typeof o.status !== 'string') return [];
        if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) return [];
        const pipeline = o.pipeline as { id?: unknown } | null | undefined;
        return [
          {
            id: o.id,
            status: o.status,
            tagList: tags as string[],
            ...(typeof o.created_at === 'string' ? { createdAt: o.created_at } : {}),
            ...(typeof o.name === 'string' ? { name: o.name } : {}),
            ...(typeof o.web_url === 'string' ? { webUrl: o.web_url } : {}),
            ...(typeof pipeline?.id === 'number' ? { pipelineId: pipeline.id } : {}),
          },
        ];
      });
    },

    async jobTags(projectId, jobId) {
      const path = `/projects/${encodeURIComponent(projectId)}/jobs/${encodeURIComponent(jobId)}`;
      const body = await getJson(path);
      const tags = typeof body === 'object' && body !== null ? (body as { tag_list?: unknown }).tag_list : undefined;
      if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
        throw new GitlabApiError(`GET ${path}: response has no tag_list array of strings`, 502);
      }
      return tags as string[];
    },
  };
}
