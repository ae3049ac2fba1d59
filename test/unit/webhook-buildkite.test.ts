import { describe, expect, it } from 'vitest';
import { eventId, JobEventSchema } from '../../functions/core/job-event.js';
import { buildkite, parseSignatureHeader } from '../../functions/core/providers/buildkite.js';
import { BadRequestError, type RawRequest } from '../../functions/core/providers/types.js';
import { defaultQueueAgents, defaultRouting } from '../../functions/core/routing.js';
import {
  BUILDKITE_SECRET,
  buildkiteJob,
  buildkitePayload,
  buildkiteSignatureHeader,
} from '../support/webhook-fixtures.js';

const now = Date.parse('2026-11-23T12:00:00.000Z');
const nowSeconds = now / 1000;
const options = { now, replayWindowSeconds: 300 };
const receivedAt = new Date(now);
const context = { queues: ['default', 'gpu'], receivedAt };

function request(payload: Record<string, unknown>, headers: Record<string, string> = {}, raw?: string): RawRequest {
  return {
    body: Buffer.from(raw ?? JSON.stringify(payload)),
    headers: { 'x-buildkite-event': String(payload.event), ...headers },
  };
}

function signed(payload: Record<string, unknown>, timestamp = nowSeconds, secret = BUILDKITE_SECRET): RawRequest {
  const body = JSON.stringify(payload);
  return request(payload, { 'x-buildkite-signature': buildkiteSignatureHeader(secret, body, timestamp) });
}

describe('Buildkite authentication', () => {
  const payload = buildkitePayload('job.scheduled');

  it('accepts a valid signature within the replay window, on either side of now', async () => {
    expect(await buildkite.verify(signed(payload), [BUILDKITE_SECRET], options)).toBe(true);
    expect(await buildkite.verify(signed(payload, nowSeconds - 299), [BUILDKITE_SECRET], options)).toBe(true);
    expect(await buildkite.verify(signed(payload, nowSeconds + 299), [BUILDKITE_SECRET], options)).toBe(true);
  });

  it('rejects a stale or future timestamp (replay), even correctly signed', async () => {
    expect(await buildkite.verify(signed(payload, nowSeconds - 301), [BUILDKITE_SECRET], options)).toBe(false);
    expect(await buildkite.verify(signed(payload, nowSeconds + 301), [BUILDKITE_SECRET], options)).toBe(false);
    expect(
      await buildkite.verify(signed(payload, nowSeconds - 1000), [BUILDKITE_SECRET], {
        now,
        replayWindowSeconds: 3600,
      }),
    ).toBe(true);
  });

  it('rejects a wrong secret, a tampered body and malformed headers', async () => {
    expect(await buildkite.verify(signed(payload, nowSeconds, 'wrong'), [BUILDKITE_SECRET], options)).toBe(false);
    const tampered = { ...signed(payload), body: Buffer.from(JSON.stringify({ ...payload, event: 'job.started' })) };
    expect(await buildkite.verify(tampered, [BUILDKITE_SECRET], options)).toBe(false);
    for (const value of [
      '',
      'timestamp=1',
      'signature=ab',
      `timestamp=${nowSeconds},signature=xyz`,
      'garbage',
      `timestamp=abc,signature=${'a'.repeat(64)}`,
    ]) {
      expect(
        await buildkite.verify(request(payload, { 'x-buildkite-signature': value }), [BUILDKITE_SECRET], options),
      ).toBe(false);
    }
    expect(await buildkite.verify(request(payload), [BUILDKITE_SECRET], options)).toBe(false);
  });

  it('signature: HMAC-SHA256 of "timestamp.body", header fields in any order', async () => {
    const body = JSON.stringify(payload);
    const header = buildkiteSignatureHeader(BUILDKITE_SECRET, body, nowSeconds);
    const [ts, sig] = header.split(',');
    expect(parseSignatureHeader(`${sig},${ts}`)).toEqual(parseSignatureHeader(header));
    expect(
      await buildkite.verify(
        request(payload, { 'x-buildkite-signature': `${sig},${ts}` }),
        [BUILDKITE_SECRET],
        options,
      ),
    ).toBe(true);
  });

  it('accepts the plain token, compared in constant time, and nothing else', async () => {
    expect(
      await buildkite.verify(request(payload, { 'x-buildkite-token': BUILDKITE_SECRET }), [BUILDKITE_SECRET], options),
    ).toBe(true);
    for (const token of [
      'wrong',
      BUILDKITE_SECRET.slice(0, -1),
      `${BUILDKITE_SECRET}x`,
      BUILDKITE_SECRET.toUpperCase(),
    ]) {
      expect(
        await buildkite.verify(request(payload, { 'x-buildkite-token': token }), [BUILDKITE_SECRET], options),
      ).toBe(false);
    }
  });

  it('when a signature header is present it decides, a token alongside does not help', async () => {
    const req = request(payload, {
      'x-buildkite-signature': 'timestamp=1,signature=00',
      'x-buildkite-token': BUILDKITE_SECRET,
    });
    expect(await buildkite.verify(req, [BUILDKITE_SECRET], options)).toBe(false);
  });
});

describe('Buildkite job events', () => {
  const id = '0190a4b8-6f2c-4b7e-9a53-1c1e2f3a4b5c';

  it('job.scheduled -> scheduled, with trace and time (Buildkite "UTC" format)', () => {
    const result = buildkite.parse(request(buildkitePayload('job.scheduled')), context);
    expect(result.kind).toBe('event');
    if (result.kind !== 'event') return;
    expect(JobEventSchema.parse(result.event)).toEqual(result.event);
    expect(result.event).toEqual({
      id: eventId('buildkite', id, 'scheduled'),
      provider: 'buildkite',
      jobId: id,
      queue: 'default',
      kind: 'scheduled',
      occurredAt: '2026-11-23T10:00:01.000Z',
      receivedAt: receivedAt.toISOString(),
      trace: {
        pipeline: 'widgets',
        repository: 'git@github.com:acme/widgets.git',
        build: '42',
        url: `https://buildkite.com/acme/widgets/builds/42#${id}`,
      },
    });
  });

  it('job.started -> started (ISO-8601 timestamps too)', () => {
    const job = buildkiteJob({
      state: 'running',
      started_at: '2026-11-23T10:00:05.123Z',
      agent_query_rules: ['queue=gpu', 'os=linux'],
    });
    // The gpu queue's agents carry os=linux too: every rule is met.
    const routing = {
      queues: [defaultQueueAgents('default'), { ...defaultQueueAgents('gpu'), agentTags: ['queue=gpu', 'os=linux'] }],
      buildkiteDefaultQueue: 'default',
    };
    const result = buildkite.parse(request(buildkitePayload('job.started', job)), { ...context, routing });
    expect(result).toMatchObject({
      kind: 'event',
      event: { kind: 'started', queue: 'gpu', occurredAt: '2026-11-23T10:00:05.123Z' },
    });
    // Agents with only queue=gpu could never take it: ignored, naming the unmet rule.
    expect(buildkite.parse(request(buildkitePayload('job.started', job)), context)).toEqual({
      kind: 'ignored',
      reason:
        'no queue\'s agents can take it: default: needs "queue=gpu", agents have "queue=default"; gpu: needs "os=linux", agents have no "os" tag',
    });
  });

  it('job.finished -> finished when it ran, cancelled when it never started', () => {
    const ran = buildkiteJob({
      state: 'passed',
      started_at: '2026-11-23 10:00:05 UTC',
      finished_at: '2026-11-23 10:01:00 UTC',
    });
    expect(buildkite.parse(request(buildkitePayload('job.finished', ran)), context)).toMatchObject({
      kind: 'event',
      event: { kind: 'finished', id: eventId('buildkite', id, 'finished'), occurredAt: '2026-11-23T10:01:00.000Z' },
    });
    for (const state of ['canceled', 'expired', 'skipped', 'timed_out', 'broken']) {
      const never = buildkiteJob({ state, started_at: null, finished_at: '2026-11-23 10:01:00 UTC' });
      expect(buildkite.parse(request(buildkitePayload('job.finished', never)), context)).toMatchObject({
        kind: 'event',
        event: { kind: 'cancelled', id: eventId('buildkite', id, 'cancelled') },
      });
    }
    const canceledWhileRunning = buildkiteJob({
      state: 'canceled',
      started_at: '2026-11-23 10:00:05 UTC',
      finished_at: '2026-11-23 10:01:00 UTC',
    });
    expect(buildkite.parse(request(buildkitePayload('job.finished', canceledWhileRunning)), context)).toMatchObject({
      event: { kind: 'finished' },
    });
  });

  it('no queue rule -> default; a queue not served -> ignored', () => {
    const none = buildkiteJob({ agent_query_rules: [] });
    expect(buildkite.parse(request(buildkitePayload('job.scheduled', none)), context)).toMatchObject({
      event: { queue: 'default' },
    });
    const absent = buildkiteJob();
    delete absent.agent_query_rules;
    expect(buildkite.parse(request(buildkitePayload('job.scheduled', absent)), context)).toMatchObject({
      event: { queue: 'default' },
    });
    expect(
      buildkite.parse(request(buildkitePayload('job.scheduled', none)), { queues: ['gpu'], receivedAt }),
    ).toMatchObject({ kind: 'ignored' });
    const other = buildkiteJob({ agent_query_rules: ['queue=macos'] });
    const result = buildkite.parse(request(buildkitePayload('job.scheduled', other)), context);
    expect(result).toEqual({
      kind: 'ignored',
      reason:
        'no queue\'s agents can take it: default: needs "queue=macos", agents have "queue=default"; gpu: needs "queue=macos", agents have "queue=gpu"',
    });
    // The default queue's name is configurable (BUILDKITE_DEFAULT_QUEUE).
    const routing = { ...defaultRouting(['default', 'gpu']), buildkiteDefaultQueue: 'gpu' };
    expect(buildkite.parse(request(buildkitePayload('job.scheduled', none)), { ...context, routing })).toMatchObject({
      event: { queue: 'gpu' },
    });
  });

  it('only script jobs need agents; other events are ignored; ping pongs', () => {
    for (const type of ['waiter', 'manual', 'trigger']) {
      expect(
        buildkite.parse(request(buildkitePayload('job.scheduled', buildkiteJob({ type }))), context),
      ).toMatchObject({ kind: 'ignored' });
    }
    for (const event of ['build.scheduled', 'build.finished', 'job.activated', 'agent.connected']) {
      expect(buildkite.parse(request(buildkitePayload(event)), context)).toMatchObject({ kind: 'ignored' });
    }
    expect(buildkite.parse(request({ event: 'ping', service: {} }), context)).toEqual({ kind: 'pong' });
  });

  it('the header names the event (the body field is only a fallback)', () => {
    const payload = buildkitePayload('job.scheduled');
    expect(buildkite.parse(request(payload, { 'x-buildkite-event': 'job.started' }), context)).toMatchObject({
      event: { kind: 'started' },
    });
    expect(buildkite.parse({ body: Buffer.from(JSON.stringify(payload)), headers: {} }, context)).toMatchObject({
      event: { kind: 'scheduled' },
    });
    expect(() => buildkite.parse({ body: Buffer.from('{}'), headers: {} }, context)).toThrow(/X-Buildkite-Event/);
  });

  it('names what is wrong in a malformed body', () => {
    const cases: [string, RegExp][] = [
      ['{', /not valid JSON/],
      ['"text"', /JSON object/],
      [JSON.stringify({ event: 'job.scheduled' }), /job is missing/],
      [JSON.stringify(buildkitePayload('job.scheduled', buildkiteJob({ id: null }))), /job\.id/],
      [JSON.stringify(buildkitePayload('job.scheduled', buildkiteJob({ type: 3 }))), /job\.type/],
      [
        JSON.stringify(buildkitePayload('job.scheduled', buildkiteJob({ agent_query_rules: 'queue=x' }))),
        /agent_query_rules/,
      ],
      [JSON.stringify(buildkitePayload('job.scheduled', buildkiteJob({ scheduled_at: 'soon' }))), /job\.scheduled_at/],
    ];
    for (const [raw, message] of cases) {
      const req: RawRequest = { body: Buffer.from(raw), headers: { 'x-buildkite-event': 'job.scheduled' } };
      expect(() => buildkite.parse(req, context)).toThrow(BadRequestError);
      expect(() => buildkite.parse(req, context)).toThrow(message);
    }
  });
});

describe('Buildkite prototype keys', () => {
  const keys = ['constructor', 'toString', 'valueOf', '__proto__', 'isPrototypeOf', 'hasOwnProperty'];

  it('an event named like an Object.prototype member is ignored, in the body or the header', () => {
    for (const key of keys) {
      const payload = buildkitePayload(key);
      expect(buildkite.parse(request(payload), context)).toEqual({
        kind: 'ignored',
        reason: `event ${key} is not acted on`,
      });
      const viaBody = { body: Buffer.from(JSON.stringify(payload)), headers: {} };
      expect(buildkite.parse(viaBody, context)).toMatchObject({ kind: 'ignored' });
    }
  });
});
