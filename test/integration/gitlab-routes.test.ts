/**
 * The GitLab job-tags lookup: the adapter (functions/adapters/gitlab/jobs-api.ts) against the
 * fake GitLab API over HTTP, and the router of the scaler's drain (functions/scaler/gitlab-routes.ts).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGitlabJobsApi, GitlabApiError } from '../../functions/adapters/gitlab/jobs-api.js';
import { eventId, type JobEventKind, type QueuedJobEvent } from '../../functions/core/job-event.js';
import { defaultQueueAgents } from '../../functions/core/routing.js';
import { createGitlabRouter } from '../../functions/scaler/gitlab-routes.js';
import { FakeGitlab } from '../../tools/fakes/gitlab.js';
import { InMemoryRouteStore } from '../../tools/fakes/memory/route-store.js';

let gitlab: FakeGitlab;
beforeAll(async () => {
  gitlab = await new FakeGitlab().start();
});
afterAll(async () => gitlab?.stop());
beforeEach(() => gitlab.reset());

const api = () => createGitlabJobsApi({ url: gitlab.url, token: async () => gitlab.token });

function event(jobId: string, kind: JobEventKind = 'scheduled', projectId = '380'): QueuedJobEvent {
  return {
    id: eventId('gitlab', jobId, kind),
    provider: 'gitlab',
    jobId,
    gitlabProjectId: projectId,
    kind,
    occurredAt: '2026-11-23T10:00:00.000Z',
    receivedAt: '2026-11-23T10:00:00.000Z',
    trace: {},
  };
}

const routing = {
  queues: [
    { ...defaultQueueAgents('docker', 'gitlab'), runnerTags: ['docker', 'linux'] },
    { ...defaultQueueAgents('shared', 'gitlab'), runUntagged: true },
  ],
  buildkiteDefaultQueue: 'default',
};

describe('GitLab Jobs API adapter', () => {
  it('reads tag_list with the token; names the status of a failure', async () => {
    gitlab.addJob({ projectId: 'group/project', jobId: '7', tags: ['docker'] });
    expect(await api().jobTags('group/project', '7')).toEqual(['docker']);
    await expect(api().jobTags('group/project', '8')).rejects.toMatchObject({ status: 404 });
    const wrong = createGitlabJobsApi({ url: gitlab.url, token: async () => 'nope' });
    await expect(wrong.jobTags('group/project', '7')).rejects.toThrow(/HTTP 401 .*read_api/);
    gitlab.failNext(1, 429, 30);
    const limited = await api()
      .jobTags('group/project', '7')
      .catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(GitlabApiError);
    expect(limited).toMatchObject({ status: 429, retryAfterMs: 30_000, unavailable: true });
    const down = createGitlabJobsApi({ url: 'http://127.0.0.1:9/api/v4', token: async () => 'x', timeoutMs: 500 });
    await expect(down.jobTags('1', '1')).rejects.toMatchObject({ status: 0, unavailable: true });
  });

  it('retries once with a refreshed token after a 401 (a rotated SSM parameter)', async () => {
    gitlab.addJob({ projectId: '380', jobId: '1', tags: [] });
    const rotated = createGitlabJobsApi({
      url: gitlab.url,
      token: async () => 'old',
      refreshToken: async () => gitlab.token,
    });
    expect(await rotated.jobTags('380', '1')).toEqual([]);
  });
});

describe('GitLab router (scaler drain)', () => {
  it('looks each CI job up once, keeps the route, and routes every event of the job the same way', async () => {
    gitlab.addJob({ projectId: '380', jobId: '1', tags: ['docker'] });
    gitlab.addJob({ projectId: '380', jobId: '2', tags: [] });
    const store = new InMemoryRouteStore();
    const router = createGitlabRouter({ api: api(), store, routing, now: Date.now });
    const first = await router.resolve([event('1'), event('1', 'started'), event('2')]);
    expect(first).toEqual([
      { event: { ...event('1'), queue: 'docker' } },
      { event: { ...event('1', 'started'), queue: 'docker' } },
      { event: { ...event('2'), queue: 'shared' } },
    ]);
    const later = await router.resolve([event('1', 'finished')]);
    expect(later).toEqual([{ event: { ...event('1', 'finished'), queue: 'docker' } }]);
    expect(gitlab.lookups('1')).toBe(1);
    expect(gitlab.lookups('2')).toBe(1);
  });

  it('a job no queue can take is ignored with the reason, once, and counted nowhere', async () => {
    gitlab.addJob({ projectId: '380', jobId: '3', tags: ['docker', 'gpu'] });
    const router = createGitlabRouter({ api: api(), store: new InMemoryRouteStore(), routing, now: Date.now });
    const [outcome] = await router.resolve([event('3')]);
    expect(outcome).toEqual({
      ignored:
        'tags ["docker","gpu"]: no queue\'s agents can take it: docker: runners lack tag(s) "gpu"; shared: runners lack tag(s) "docker", "gpu"',
    });
    await router.resolve([event('3', 'cancelled')]);
    expect(gitlab.lookups('3')).toBe(1);
  });

  it('a failed lookup (429, 500, no token) is never a guess: the event fails and is retried later', async () => {
    gitlab.addJob({ projectId: '380', jobId: '4', tags: ['docker'] });
    let now = 1_000_000;
    const router = createGitlabRouter({ api: api(), store: new InMemoryRouteStore(), routing, now: () => now });
    gitlab.failNext(1, 429, 20);
    // The message is to come back when the API may be asked again (Retry-After).
    expect(await router.resolve([event('4')])).toEqual([
      { failed: expect.stringContaining('HTTP 429'), retryAfterMs: 20_000 },
    ]);
    // Paused for the Retry-After: no call at all meanwhile.
    now += 10_000;
    expect(await router.resolve([event('4')])).toEqual([
      { failed: expect.stringContaining('paused'), retryAfterMs: 10_000 },
    ]);
    expect(gitlab.lookups('4')).toBe(1);
    now += 11_000;
    gitlab.failNext(1, 500);
    // Second consecutive failure without Retry-After: 5 s doubled.
    expect(await router.resolve([event('4')])).toEqual([
      { failed: expect.stringContaining('HTTP 500'), retryAfterMs: 10_000 },
    ]);
    now += 10_001;
    expect(await router.resolve([event('4')])).toEqual([{ event: { ...event('4'), queue: 'docker' } }]);
    const tokenless = createGitlabRouter({ api: undefined, store: new InMemoryRouteStore(), routing, now: () => now });
    expect(await tokenless.resolve([event('4')])).toEqual([{ failed: expect.stringContaining('GITLAB_API_TOKEN') }]);
    // A wrong token (401) or an invisible job (404) is not an outage: no pause, no deferral.
    const wrong = createGitlabRouter({
      api: createGitlabJobsApi({ url: gitlab.url, token: async () => 'wrong' }),
      store: new InMemoryRouteStore(),
      routing,
      now: () => now,
    });
    expect(await wrong.resolve([event('4')])).toEqual([{ failed: expect.stringContaining('HTTP 401') }]);
  });
});
