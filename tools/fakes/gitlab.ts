/**
 * A fake GitLab REST API v4 served over HTTP, for the calls the scaler makes:
 * `GET /api/v4/projects/:id/jobs/:job_id` with a `PRIVATE-TOKEN` header, answering a job
 * document with `tag_list` as GitLab's Jobs API does, and `GET /api/v4/projects/:id/jobs` with
 * `scope[]` filters and `per_page` (the project's jobs, newest first, as "List project jobs"). Faults are injected per request: the next
 * N answers can be 429 (with Retry-After) or 500. Every request is recorded.
 *
 * Jobs come from addJob(), from `PUT /api/v4/projects/:id/jobs/:job_id` with `{"tag_list": [...]}`
 * (a stand-in for the pipeline that creates the job in GitLab; not a GitLab endpoint), or, for
 * any other job id, `defaultTags` when set (the local stack: every simulated GitLab job is
 * tagged for the first queue whose runners are GitLab runners).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeGitlabJob {
  readonly projectId: string;
  readonly jobId: string;
  readonly tags: readonly string[];
  /** GitLab's job status (default `pending`: waiting for a runner). */
  readonly status?: string;
}

export interface FakeGitlabCall {
  readonly path: string;
  readonly status: number;
}

export class FakeGitlab {
  readonly calls: FakeGitlabCall[] = [];
  private readonly jobs = new Map<string, FakeGitlabJob>();
  private faults: { status: number; retryAfter?: string }[] = [];
  private server: Server | undefined;
  url = '';

  constructor(
    readonly token = 'glpat-fake-read-api',
    private readonly defaultTags?: readonly string[],
  ) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        this.calls.push({ path, status });
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      const match = /^\/api\/v4\/projects\/([^/]+)\/jobs\/(\d+)$/.exec(path);
      if (req.method === 'PUT' && match) {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          try {
            const { tag_list } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { tag_list?: unknown };
            if (!Array.isArray(tag_list) || tag_list.some((t) => typeof t !== 'string')) throw new Error('tag_list');
            this.addJob({ projectId: decodeURIComponent(match[1] ?? ''), jobId: match[2] ?? '', tags: tag_list });
            answer(200, { id: Number(match[2]), tag_list });
          } catch {
            answer(400, { message: 'tag_list must be an array of strings' });
          }
        });
        return;
      }
      const list = /^\/api\/v4\/projects\/([^/]+)\/jobs$/.exec(path);
      if (req.method === 'GET' && list) {
        if (req.headers['private-token'] !== this.token) return answer(401, { message: '401 Unauthorized' });
        const fault = this.faults.shift();
        if (fault) return answer(fault.status, { message: '500 Internal Server Error' });
        // `scope[]=pending&scope[]=running`: only jobs in those statuses (GitLab: all without it).
        const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
        const scopes = query.getAll('scope[]');
        const perPage = Math.min(100, Number(query.get('per_page') ?? 20) || 20);
        const projectId = decodeURIComponent(list[1] ?? '');
        const jobs = [...this.jobs.values()]
          .filter((j) => j.projectId === projectId && (scopes.length === 0 || scopes.includes(j.status ?? 'pending')))
          .sort((a, b) => Number(b.jobId) - Number(a.jobId))
          .slice(0, perPage);
        return answer(
          200,
          jobs.map((j) => ({
            id: Number(j.jobId),
            name: 'test',
            stage: 'test',
            status: j.status ?? 'pending',
            tag_list: j.tags,
            created_at: new Date().toISOString(),
            pipeline: { id: 2366, project_id: Number(projectId) || 0, status: 'pending' },
            web_url: `https://gitlab.example.com/group/project/-/jobs/${j.jobId}`,
          })),
        );
      }
      if (req.method !== 'GET' || !match) return answer(404, { error: '404 Not Found' });
      if (req.headers['private-token'] !== this.token) return answer(401, { message: '401 Unauthorized' });
      const fault = this.faults.shift();
      if (fault) {
        return answer(
          fault.status,
          { message: fault.status === 429 ? 'Retry later' : '500 Internal Server Error' },
          fault.retryAfter ? { 'retry-after': fault.retryAfter } : {},
        );
      }
      const projectId = decodeURIComponent(match[1] ?? '');
      const job =
        this.jobs.get(`${projectId}/${match[2]}`) ??
        (this.defaultTags ? { projectId, jobId: match[2] ?? '', tags: this.defaultTags } : undefined);
      if (!job) return answer(404, { message: '404 Job Not Found' });
      // The fields of GitLab's "Get a single job" answer the scaler does not read are omitted.
      return answer(200, {
        id: Number(job.jobId),
        name: 'test',
        stage: 'test',
        status: 'pending',
        tag_list: job.tags,
        web_url: `https://gitlab.example.com/group/project/-/jobs/${job.jobId}`,
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api/v4`;
    return this;
  }

  /** The tags GitLab would answer for a job (registered, else the default), if it knows it. */
  tagsOf(projectId: string, jobId: string): readonly string[] | undefined {
    return this.jobs.get(`${projectId}/${jobId}`)?.tags ?? this.defaultTags;
  }

  addJob(job: FakeGitlabJob): void {
    this.jobs.set(`${job.projectId}/${job.jobId}`, job);
  }

  /** The next `count` job requests fail with `status` (429: with Retry-After seconds). */
  failNext(count: number, status: 429 | 500, retryAfterSeconds?: number): void {
    for (let i = 0; i < count; i++)
      this.faults.push({
        status,
        ...(retryAfterSeconds === undefined ? {} : { retryAfter: String(retryAfterSeconds) }),
      });
  }

  /** Requests for one job. */
  lookups(jobId: string): number {
    return this.calls.filter((c) => c.path.endsWith(`/jobs/${jobId}`)).length;
  }

  reset(): void {
    this.calls.length = 0;
    this.faults = [];
    this.jobs.clear();
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
