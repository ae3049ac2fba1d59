/**
 * Every stored field of a job event is bounded: a signed request can carry megabytes in a trace
 * field, NULs or lone surrogates in any string, yet the event it becomes fits SQS and DynamoDB
 * many times over, and an overlong optional field never stops the event.
 */
import { describe, expect, it } from 'vitest';
import { parseEventBody, sendMessageInput } from '../../functions/adapters/sqs/events-queue.js';
import {
  boundedText,
  EVENT_BOUNDS,
  eventId,
  eventMessageBody,
  InvalidJobEventError,
  invalidJobEvent,
  type JobEvent,
  type QueuedJobEvent,
} from '../../functions/core/job-event.js';
import { buildkite } from '../../functions/core/providers/buildkite.js';
import { github } from '../../functions/core/providers/github.js';
import { gitlab } from '../../functions/core/providers/gitlab.js';
import type { RawRequest } from '../../functions/core/providers/types.js';
import { sqsAcceptsBody } from '../support/sqs-contract.js';
import { buildkiteJob, buildkitePayload, gitlabJob, workflowJobExamples } from '../support/webhook-fixtures.js';

const receivedAt = new Date('2026-11-23T12:00:00.000Z');
const context = { queues: ['default', 'ubuntu-latest'], receivedAt };
const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/1/events';

const event: JobEvent = {
  id: eventId('gitlab', '7', 'scheduled'),
  provider: 'gitlab',
  jobId: '7',
  queue: 'default',
  kind: 'scheduled',
  occurredAt: '2026-11-23T10:00:00.000Z',
  receivedAt: '2026-11-23T10:00:01.000Z',
  trace: {},
};

function eventOf(result: ReturnType<typeof buildkite.parse>): QueuedJobEvent {
  if (result.kind !== 'event') throw new Error(`expected an event, got ${JSON.stringify(result).slice(0, 200)}`);
  return result.event;
}

describe('boundedText', () => {
  it('keeps short clean text as it is', () => {
    expect(boundedText('acme/widgets', 512)).toBe('acme/widgets');
    expect(boundedText('ünïcødé 🚀', 512)).toBe('ünïcødé 🚀');
  });

  it('drops control characters and replaces unpaired surrogates', () => {
    expect(boundedText('a\u0000b\u001fc\u007fd\u0085e', 512)).toBe('abcde');
    expect(boundedText('x\ud800y\udc00z', 512)).toBe('x\ufffdy\ufffdz');
  });

  it('cuts to the bound with an ellipsis, never splitting a surrogate pair', () => {
    expect(boundedText('x'.repeat(1000), 10)).toBe(`${'x'.repeat(9)}…`);
    const cut = boundedText(`${'x'.repeat(8)}🚀🚀`, 10);
    expect(cut.length).toBeLessThanOrEqual(10);
    expect(cut).toBe(`${'x'.repeat(8)}…`);
  });
});

describe('events from oversized or hostile signed bodies', () => {
  const huge = 'w'.repeat(300_000);

  it('Buildkite: a 300 KB pipeline slug is cut, the event still made', () => {
    const payload = buildkitePayload('job.scheduled', buildkiteJob({ web_url: `https://x/${huge}` }));
    (payload.pipeline as Record<string, unknown>).slug = huge;
    const request: RawRequest = {
      body: Buffer.from(JSON.stringify(payload)),
      headers: { 'x-buildkite-event': 'job.scheduled' },
    };
    const ev = eventOf(buildkite.parse(request, context));
    expect(ev.trace.pipeline).toHaveLength(EVENT_BOUNDS.traceChars);
    expect(ev.trace.pipeline?.endsWith('…')).toBe(true);
    expect(ev.trace.url).toHaveLength(EVENT_BOUNDS.traceChars);
    expect(invalidJobEvent(ev)).toBeUndefined();
  });

  it('GitHub: huge repository and workflow names, a NUL-laden delivery id', () => {
    const example = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued');
    const payload = {
      ...example,
      repository: { ...example?.repository, full_name: huge },
      workflow_job: { ...example?.workflow_job, workflow_name: `\u0000${huge}`, html_url: '\ud800' },
    };
    const request: RawRequest = {
      body: Buffer.from(JSON.stringify(payload)),
      headers: { 'x-github-event': 'workflow_job', 'x-github-delivery': `\u0000${'d'.repeat(1000)}` },
    };
    const ev = eventOf(github.parse(request, context));
    expect(ev.trace.repository).toHaveLength(EVENT_BOUNDS.traceChars);
    expect(ev.trace.pipeline).toHaveLength(EVENT_BOUNDS.traceChars);
    expect(ev.trace.url).toBe('\ufffd');
    expect(ev.deliveryId).toHaveLength(EVENT_BOUNDS.deliveryIdChars);
    expect(invalidJobEvent(ev)).toBeUndefined();
  });

  it('GitLab: a huge project path; a delivery id of control characters only is dropped', () => {
    const payload = gitlabJob({ project: { path_with_namespace: huge, web_url: huge } });
    const request: RawRequest = {
      body: Buffer.from(JSON.stringify(payload)),
      headers: { 'x-gitlab-event': 'Job Hook', 'x-gitlab-event-uuid': '\u0000\u0001' },
    };
    const ev = eventOf(gitlab.parse(request, context));
    expect(ev.trace.repository).toHaveLength(EVENT_BOUNDS.traceChars);
    expect(ev).not.toHaveProperty('deliveryId');
    expect(invalidJobEvent(ev)).toBeUndefined();
  });

  it('the largest possible event is a message far below 256 KiB, in characters SQS accepts', () => {
    const widest = '\uffff'.repeat(EVENT_BOUNDS.traceChars);
    const worst: JobEvent = {
      ...event,
      deliveryId: '\uffff'.repeat(EVENT_BOUNDS.deliveryIdChars),
      trace: { pipeline: widest, repository: widest, build: widest, run: widest, url: widest },
    };
    expect(invalidJobEvent(worst)).toBeUndefined();
    const body = eventMessageBody(worst);
    expect(body.length).toBeLessThanOrEqual(EVENT_BOUNDS.messageBytes);
    expect(EVENT_BOUNDS.messageBytes).toBeLessThanOrEqual((256 * 1024) / 8);
    expect(sqsAcceptsBody(body)).toBe(true);
    expect(sqsAcceptsBody(JSON.stringify(worst))).toBe(false); // why the body is ASCII
    expect(JSON.parse(body)).toEqual(worst);
  });
});

describe('no invalid event can be enqueued', () => {
  const bad: [string, unknown][] = [
    ['kind from a prototype lookup', { ...event, kind: {} }],
    ['kind a function', { ...event, kind: Object }],
    ['unknown kind', { ...event, kind: 'constructor' }],
    ['id not the event id', { ...event, id: eventId('gitlab', '8', 'scheduled') }],
    ['job id with a NUL', { ...event, jobId: '7\u0000' }],
    ['job id too long', { ...event, jobId: '7'.repeat(129) }],
    ['queue not a queue name', { ...event, queue: '__proto__' }],
    ['occurredAt not a time', { ...event, occurredAt: 'yesterday' }],
    ['trace over its bound', { ...event, trace: { pipeline: 'p'.repeat(EVENT_BOUNDS.traceChars + 1) } }],
    ['trace with a NUL', { ...event, trace: { url: 'a\u0000' } }],
    ['unknown field', { ...event, extra: 1 }],
  ];
  for (const [name, candidate] of bad) {
    it(`refuses ${name}`, () => {
      expect(invalidJobEvent(candidate)).toEqual(expect.any(String));
      expect(() => sendMessageInput(QUEUE_URL, candidate as JobEvent)).toThrow(InvalidJobEventError);
    });
  }

  it('a valid event passes and reads back unchanged', () => {
    expect(invalidJobEvent(event)).toBeUndefined();
    expect(parseEventBody(sendMessageInput(QUEUE_URL, event).MessageBody)).toEqual({ event });
  });
});

describe('messages recorded before the bounds existed', () => {
  it('are applied with their optional fields cut, not sent to the dead-letter queue', () => {
    const old = { ...event, deliveryId: 'd'.repeat(300), trace: { pipeline: 'p'.repeat(5000), url: 'u\u0000' } };
    const parsed = parseEventBody(JSON.stringify(old));
    expect(parsed).toEqual({
      event: {
        ...event,
        deliveryId: `${'d'.repeat(EVENT_BOUNDS.deliveryIdChars - 1)}…`,
        trace: { pipeline: `${'p'.repeat(EVENT_BOUNDS.traceChars - 1)}…`, url: 'u' },
      },
    });
  });

  it('still refuse a bad identifying field', () => {
    expect(parseEventBody(JSON.stringify({ ...event, jobId: 'x'.repeat(300) }))).toMatchObject({
      error: expect.stringMatching(/jobId/),
    });
  });
});
