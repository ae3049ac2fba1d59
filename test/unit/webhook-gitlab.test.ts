import { describe, expect, it } from 'vitest';
import { eventId, JobEventSchema } from '../../functions/core/job-event.js';
import { gitlab } from '../../functions/core/providers/gitlab.js';
import { BadRequestError, type RawRequest } from '../../functions/core/providers/types.js';
import { defaultQueueAgents, defaultRouting } from '../../functions/core/routing.js';
import { GITLAB_TOKEN, gitlabJob } from '../support/webhook-fixtures.js';

const receivedAt = new Date('2026-11-23T12:00:00.000Z');
const context = { queues: ['default', 'docker'], receivedAt };
const options = { now: receivedAt.getTime(), replayWindowSeconds: 300 };

function request(payload: unknown, headers: Record<string, string> = {}, raw?: string): RawRequest {
  return {
    body: Buffer.from(raw ?? JSON.stringify(payload)),
    headers: {
      'x-gitlab-event': 'Job Hook',
      'x-gitlab-token': GITLAB_TOKEN,
      'x-gitlab-event-uuid': 'uuid-1',
      ...headers,
    },
  };
}

describe('GitLab token', () => {
  it('accepts exactly the configured token', async () => {
    expect(await gitlab.verify(request({}), [GITLAB_TOKEN], options)).toBe(true);
    for (const token of ['', 'x', GITLAB_TOKEN.slice(1), `${GITLAB_TOKEN} `, GITLAB_TOKEN.toUpperCase()]) {
      expect(await gitlab.verify(request({}, { 'x-gitlab-token': token }), [GITLAB_TOKEN], options)).toBe(false);
    }
    expect(await gitlab.verify({ body: Buffer.from('{}'), headers: {} }, [GITLAB_TOKEN], options)).toBe(false);
    expect(await gitlab.verify(request({}), [], options)).toBe(false);
  });
});

describe('GitLab Job Hook', () => {
  it('pending -> scheduled, with trace, delivery id and time', () => {
    const result = gitlab.parse(request(gitlabJob()), context);
    expect(result.kind).toBe('event');
    if (result.kind !== 'event') return;
    expect(JobEventSchema.parse(result.event)).toEqual(result.event);
    expect(result.event).toEqual({
      id: eventId('gitlab', '1977', 'scheduled'),
      provider: 'gitlab',
      jobId: '1977',
      // No queue yet: the Job Hook has no job tags; the scaler looks them up in this project.
      gitlabProjectId: '380',
      kind: 'scheduled',
      occurredAt: '2026-11-23T10:00:00.000Z',
      receivedAt: receivedAt.toISOString(),
      deliveryId: 'uuid-1',
      trace: {
        repository: 'gitlab-org/gitlab-test',
        pipeline: '2366',
        build: 'test',
        url: 'http://gitlab.example.com/gitlab-org/gitlab-test/-/jobs/1977',
      },
    });
  });

  it('running -> started; success/failed/canceled -> finished, or cancelled when never started', () => {
    const started = { build_started_at: '2026-11-23T10:00:05.000Z' };
    expect(gitlab.parse(request(gitlabJob({ build_status: 'running', ...started })), context)).toMatchObject({
      event: { kind: 'started', occurredAt: '2026-11-23T10:00:05.000Z' },
    });
    for (const status of ['success', 'failed', 'canceled']) {
      const ran = gitlabJob({ build_status: status, ...started, build_finished_at: '2026-11-23 10:02:00 UTC' });
      expect(gitlab.parse(request(ran), context)).toMatchObject({
        event: { kind: 'finished', occurredAt: '2026-11-23T10:02:00.000Z', id: eventId('gitlab', '1977', 'finished') },
      });
    }
    for (const status of ['canceled', 'failed', 'skipped']) {
      const never = gitlabJob({ build_status: status, build_finished_at: '2026-11-23 10:02:00 +0100' });
      expect(gitlab.parse(request(never), context)).toMatchObject({
        event: { kind: 'cancelled', occurredAt: '2026-11-23T09:02:00.000Z' },
      });
    }
  });

  it('statuses that need no agent yet are ignored; other hooks are ignored', () => {
    for (const status of ['created', 'manual', 'waiting_for_resource', 'preparing', 'scheduled', 'canceling']) {
      expect(gitlab.parse(request(gitlabJob({ build_status: status })), context)).toMatchObject({ kind: 'ignored' });
    }
    expect(
      gitlab.parse(request({ object_kind: 'pipeline' }, { 'x-gitlab-event': 'Pipeline Hook' }), context),
    ).toMatchObject({
      kind: 'ignored',
    });
  });

  it("leaves the queue to the tag lookup: runner.tags are the runner's, not the job's (unless the runner is one of a queue's)", () => {
    const pending = gitlab.parse(request(gitlabJob()), context);
    expect(pending).toMatchObject({ kind: 'event', event: { gitlabProjectId: '380' } });
    expect(pending.kind === 'event' && 'queue' in pending.event).toBe(false);
    const picked = gitlabJob({
      build_status: 'running',
      runner: {
        id: 380987,
        description: 'shared-runners-manager-6.gitlab.com',
        runner_type: 'instance_type',
        active: true,
        is_shared: true,
        // Not the tags of any queue's runners (docker's carry exactly [docker]): not ours.
        tags: ['docker', 'gce'],
      },
    });
    const running = gitlab.parse(request(picked), context);
    expect(running).toMatchObject({ kind: 'event', event: { kind: 'started', gitlabProjectId: '380' } });
    expect(running.kind === 'event' && 'queue' in running.event).toBe(false);
    // No queue here runs GitLab agents: nothing to look up.
    const buildkiteOnly = {
      queues: ['default'],
      routing: { ...defaultRouting(['default']), queues: [defaultQueueAgents('default', 'buildkite')] },
      receivedAt,
    };
    expect(gitlab.parse(request(gitlabJob()), buildkiteOnly)).toEqual({
      kind: 'ignored',
      reason: 'no queue served here runs gitlab agents',
    });
  });

  it('names what is wrong in a malformed body', () => {
    const cases: [string, RegExp][] = [
      ['nope', /not valid JSON/],
      [JSON.stringify({ ...gitlabJob(), object_kind: 'pipeline' }), /object_kind/],
      [JSON.stringify({ ...gitlabJob(), build_id: -1 }), /build_id/],
      [JSON.stringify({ ...gitlabJob(), build_status: null }), /build_status/],
      [JSON.stringify({ ...gitlabJob(), project_id: 'a/b' }), /project_id/],
      [JSON.stringify({ ...gitlabJob(), build_created_at: 12 }), /build_created_at/],
    ];
    for (const [raw, message] of cases) {
      expect(() => gitlab.parse(request(undefined, {}, raw), context)).toThrow(BadRequestError);
      expect(() => gitlab.parse(request(undefined, {}, raw), context)).toThrow(message);
    }
    expect(() => gitlab.parse({ body: Buffer.from('{}'), headers: {} }, context)).toThrow(/X-Gitlab-Event/);
  });
});

describe('GitLab prototype keys', () => {
  const keys = ['constructor', 'toString', 'valueOf', '__proto__', 'isPrototypeOf', 'hasOwnProperty'];

  it('a build_status named like an Object.prototype member is ignored', () => {
    for (const status of keys) {
      expect(gitlab.parse(request(gitlabJob({ build_status: status })), context)).toEqual({
        kind: 'ignored',
        reason: `build_status ${status} is not acted on`,
      });
    }
  });
});
