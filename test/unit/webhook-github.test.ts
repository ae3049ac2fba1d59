import { sign } from '@octokit/webhooks-methods';
import { describe, expect, it } from 'vitest';
import { eventId, JobEventSchema } from '../../functions/core/job-event.js';
import { github } from '../../functions/core/providers/github.js';
import { BadRequestError, type RawRequest } from '../../functions/core/providers/types.js';
import { defaultQueueAgents, defaultRouting } from '../../functions/core/routing.js';
import { GITHUB_SECRET, githubSignature, workflowJobExamples } from '../support/webhook-fixtures.js';

const receivedAt = new Date('2026-11-23T12:00:00.000Z');
const queues = ['default', 'ubuntu-latest', 'k8s', 'GPU'];
// The GPU queue's runners carry every label of the example job that runs on them.
const routing = {
  ...defaultRouting(queues),
  queues: queues.map((q) =>
    q === 'GPU'
      ? { ...defaultQueueAgents(q), runnerLabels: ['self-hosted', 'GPU', 'db-app', 'dc-03'] }
      : defaultQueueAgents(q),
  ),
};
const context = { queues, routing, receivedAt };
const verifyOptions = { now: receivedAt.getTime(), replayWindowSeconds: 300 };

function request(payload: unknown, headers: Record<string, string> = {}, raw?: string): RawRequest {
  const body = raw ?? JSON.stringify(payload);
  return {
    body: Buffer.from(body),
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'workflow_job',
      'x-github-delivery': 'd-1',
      'x-hub-signature-256': githubSignature(GITHUB_SECRET, body),
      ...headers,
    },
  };
}

describe('GitHub signature verification', () => {
  it('matches the documented test vector', async () => {
    expect(await sign(GITHUB_SECRET, 'Hello, World!')).toBe(
      'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
    );
    const req: RawRequest = {
      body: Buffer.from('Hello, World!'),
      headers: { 'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17' },
    };
    expect(await github.verify(req, [GITHUB_SECRET], verifyOptions)).toBe(true);
    expect(await github.verify(req, ['another secret'], verifyOptions)).toBe(false);
  });

  it('accepts any of several configured secrets (rotation)', async () => {
    const req = request({ x: 1 }, { 'x-hub-signature-256': githubSignature('new-secret', JSON.stringify({ x: 1 })) });
    expect(github.secretsFrom('old-secret, new-secret')).toEqual(['old-secret', 'new-secret']);
    expect(await github.verify(req, ['old-secret', 'new-secret'], verifyOptions)).toBe(true);
    expect(await github.verify(req, ['old-secret'], verifyOptions)).toBe(false);
  });

  it('rejects missing, malformed, sha1 and tampered signatures', async () => {
    const good = request({ a: 1 });
    const tampered: RawRequest = { ...good, body: Buffer.from(JSON.stringify({ a: 2 })) };
    expect(await github.verify(tampered, [GITHUB_SECRET], verifyOptions)).toBe(false);
    for (const value of ['', 'sha256=', 'sha256=zz', 'sha1=0123456789abcdef0123456789abcdef01234567', 'garbage']) {
      expect(
        await github.verify(request({ a: 1 }, { 'x-hub-signature-256': value }), [GITHUB_SECRET], verifyOptions),
      ).toBe(false);
    }
    const none: RawRequest = { body: good.body, headers: {} };
    expect(await github.verify(none, [GITHUB_SECRET], verifyOptions)).toBe(false);
    expect(await github.verify(good, [], verifyOptions)).toBe(false);
  });

  it('verifies the raw bytes: a body that is not valid UTF-8 never verifies', async () => {
    const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const req: RawRequest = { body: bytes, headers: { 'x-hub-signature-256': githubSignature(GITHUB_SECRET, bytes) } };
    expect(await github.verify(req, [GITHUB_SECRET], verifyOptions)).toBe(false);
  });
});

describe('GitHub workflow_job parsing: every @octokit/webhooks-examples example', () => {
  const examples = workflowJobExamples();
  const expected: Record<string, { kind: string; queue: string } | 'ignored'> = {
    'in_progress/2832853555': { kind: 'started', queue: 'GPU' }, // labels gpu, db-app, dc-03: case-insensitive match
    'completed/289782451/failure': { kind: 'finished', queue: 'ubuntu-latest' },
    'completed/289782451/success': { kind: 'finished', queue: 'ubuntu-latest' },
    'in_progress/289782451': { kind: 'started', queue: 'ubuntu-latest' },
    'in_progress/14541957942': { kind: 'started', queue: 'ubuntu-latest' },
    'queued/289782451': { kind: 'scheduled', queue: 'ubuntu-latest' },
    'queued/12877621891': 'ignored', // status "waiting": not runnable yet
    'waiting/12877621891': 'ignored',
  };

  it('covers all of them', () => {
    expect(examples.length).toBe(Object.keys(expected).length);
  });

  for (const example of examples) {
    const j = example.workflow_job;
    const key = [example.action, j.id, ...(example.action === 'completed' ? [j.conclusion] : [])].join('/');
    it(`${key} -> ${JSON.stringify(expected[key])}`, () => {
      const want = expected[key];
      expect(want).toBeDefined();
      const result = github.parse(request(example), context);
      if (want === 'ignored') {
        expect(result.kind).toBe('ignored');
        return;
      }
      expect(result.kind).toBe('event');
      if (result.kind !== 'event') return;
      const e = result.event;
      expect(JobEventSchema.parse(e)).toEqual(e);
      expect(e).toMatchObject({
        provider: 'github',
        jobId: String(j.id),
        kind: want!.kind,
        queue: want!.queue,
        deliveryId: 'd-1',
      });
      expect(e.id).toBe(eventId('github', String(j.id), e.kind));
      expect(e.receivedAt).toBe(receivedAt.toISOString());
      expect(e.trace.url).toBe(j.html_url);
      expect(e.trace.repository).toBe((example.repository as { full_name: string }).full_name);
      const when = e.kind === 'scheduled' ? j.created_at : e.kind === 'started' ? j.started_at : j.completed_at;
      expect(e.occurredAt).toBe(new Date(String(when)).toISOString());
    });
  }

  it("counts a job only where the runners carry EVERY runs-on label (GitHub's own rule)", () => {
    const gpu = examples.find((e) => e.workflow_job.id === 2832853555);
    expect(gpu?.workflow_job.labels).toEqual(['gpu', 'db-app', 'dc-03']);
    // Runners with the default labels (self-hosted, linux, x64, GPU) lack two of them.
    const result = github.parse(request(gpu), { queues, receivedAt });
    expect(result).toEqual({
      kind: 'ignored',
      reason: expect.stringContaining('GPU: runners lack label(s) "db-app", "dc-03"'),
    });
    // self-hosted + k8s (a real queued example) fits the k8s queue's default labels.
    const k8s = examples.find((e) => e.workflow_job.id === 12877621891 && e.action === 'queued');
    const runnable = { ...k8s, workflow_job: { ...k8s?.workflow_job, status: 'queued' } };
    expect(github.parse(request(runnable), { queues, receivedAt })).toMatchObject({ event: { queue: 'k8s' } });
  });

  it('ignores every example whose labels name no served queue', () => {
    for (const example of examples) {
      const result = github.parse(request(example), { queues: ['some-other-queue'], receivedAt });
      expect(result.kind).toBe('ignored');
    }
  });
});

describe('GitHub workflow_job mapping details', () => {
  const queued = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued')!;

  function completed(job: Record<string, unknown>) {
    return { ...queued, action: 'completed', workflow_job: { ...queued.workflow_job, status: 'completed', ...job } };
  }

  it('a job cancelled before any runner took it is cancelled, not finished', () => {
    const result = github.parse(request(completed({ conclusion: 'cancelled', runner_id: null, steps: [] })), context);
    expect(result).toMatchObject({ kind: 'event', event: { kind: 'cancelled' } });
    if (result.kind === 'event')
      expect(result.event.id).toBe(eventId('github', String(queued.workflow_job.id), 'cancelled'));
  });

  it('a job cancelled while running is finished', () => {
    const steps = [{ name: 'a', status: 'completed', conclusion: 'cancelled', started_at: '2021-09-13T02:22:00Z' }];
    const result = github.parse(request(completed({ conclusion: 'cancelled', runner_id: 7, steps })), context);
    expect(result).toMatchObject({ kind: 'event', event: { kind: 'finished' } });
  });

  it('accepts form-encoded deliveries (payload=)', () => {
    const raw = new URLSearchParams({ payload: JSON.stringify(queued) }).toString();
    const result = github.parse(
      request(undefined, { 'content-type': 'application/x-www-form-urlencoded' }, raw),
      context,
    );
    expect(result).toMatchObject({
      kind: 'event',
      event: { kind: 'scheduled', jobId: String(queued.workflow_job.id) },
    });
    expect(() =>
      github.parse(request(undefined, { 'content-type': 'application/x-www-form-urlencoded' }, 'other=1'), context),
    ).toThrow(/payload/);
  });

  it('ignores other events and actions', () => {
    expect(github.parse(request({ zen: 'hi' }, { 'x-github-event': 'ping' }), context)).toMatchObject({
      kind: 'ignored',
    });
    expect(github.parse(request({ ...queued, action: 'something_new' }), context)).toMatchObject({ kind: 'ignored' });
  });

  it('names what is wrong in a malformed body', () => {
    const cases: [string | undefined, unknown, RegExp][] = [
      ['{not json', undefined, /not valid JSON/],
      ['[1,2]', undefined, /JSON object/],
      [undefined, { action: 'queued' }, /workflow_job/],
      [undefined, { ...queued, action: 7 }, /action/],
      [undefined, { ...queued, workflow_job: { ...queued.workflow_job, id: 'x y' } }, /workflow_job\.id/],
      [undefined, { ...queued, workflow_job: { ...queued.workflow_job, labels: 'k8s' } }, /workflow_job\.labels/],
      [
        undefined,
        { ...queued, workflow_job: { ...queued.workflow_job, created_at: 'yesterday' } },
        /workflow_job\.created_at/,
      ],
    ];
    for (const [raw, payload, message] of cases) {
      expect(() => github.parse(request(payload, {}, raw), context)).toThrow(BadRequestError);
      expect(() => github.parse(request(payload, {}, raw), context)).toThrow(message);
    }
    expect(() => github.parse({ body: Buffer.from('{}'), headers: {} }, context)).toThrow(/X-GitHub-Event/);
  });
});

describe('GitHub prototype keys', () => {
  const keys = ['constructor', 'toString', 'valueOf', '__proto__', 'isPrototypeOf', 'hasOwnProperty'];
  const example = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued');

  it('an action named like an Object.prototype member is ignored', () => {
    for (const action of keys) {
      expect(github.parse(request({ ...example, action }), context)).toEqual({
        kind: 'ignored',
        reason: `action ${action} is not acted on`,
      });
    }
  });
});
