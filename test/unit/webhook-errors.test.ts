/**
 * The webhook's answers other than success: one error type each, mapped to a response and a
 * log line in one place; and the last check before enqueueing, which no provider module's
 * output can get past.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { eventId, InvalidJobEventError, type JobEvent } from '../../functions/core/job-event.js';
import { gitlab } from '../../functions/core/providers/gitlab.js';
import { loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler } from '../../functions/webhook/app.js';
import {
  BadRequestError,
  errorResponse,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  UnavailableError,
} from '../../functions/webhook/errors.js';
import { GITLAB_TOKEN, gitlabJob, gitlabRequest } from '../support/webhook-fixtures.js';

describe('errorResponse: one answer per error type', () => {
  const cases: [string, unknown, number, Record<string, unknown>, Record<string, string>, string][] = [
    ['bad request', new BadRequestError('job.id is missing'), 400, { message: 'job.id is missing' }, {}, 'warn'],
    ['unauthorized', new UnauthorizedError(), 401, { message: 'Unauthorized' }, {}, 'warn'],
    ['not found', new NotFoundError(), 404, { message: 'Not found' }, {}, 'info'],
    ['not POST', new MethodNotAllowedError(), 405, { message: 'Method not allowed' }, { allow: 'POST' }, 'info'],
    ['too large', new PayloadTooLargeError(1024), 413, { message: 'Body larger than 1024 bytes' }, {}, 'warn'],
    [
      'SSM down',
      new UnavailableError('secret', new Error('throttled')),
      503,
      { message: 'Temporarily unavailable, retry later' },
      { 'retry-after': '5' },
      'error',
    ],
    [
      'SQS down',
      new UnavailableError('queue', new Error('connect ECONNREFUSED')),
      503,
      { message: 'Could not record the event, retry later' },
      { 'retry-after': '5' },
      'error',
    ],
    ['a bug', new TypeError('x is undefined'), 500, { message: 'Internal error' }, {}, 'error'],
    ['a bug that throws a string', 'boom', 500, { message: 'Internal error' }, {}, 'error'],
  ];
  for (const [name, error, status, body, headers, level] of cases) {
    it(`${name} -> ${status}`, () => {
      const answer = errorResponse(error);
      expect(answer).toMatchObject({ status, body, headers, log: { level } });
    });
  }

  it('logs why a dependency failed, and bounds what a request can make it say', () => {
    expect(errorResponse(new UnavailableError('queue', new Error('connect ECONNREFUSED'))).log).toEqual({
      level: 'error',
      message: 'queue unavailable',
      fields: { error: 'Error: connect ECONNREFUSED' },
    });
    const long = errorResponse(new BadRequestError(`event ${'x'.repeat(100_000)} is odd`));
    expect(long.body.message.length).toBeLessThanOrEqual(500);
    expect(long.log.fields).toEqual({ reason: long.body.message });
  });
});

describe('the last check before enqueueing', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  function handler() {
    const sent: JobEvent[] = [];
    const config = loadWebhookConfig({
      EVENTS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/1/events',
      GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
      JOB_TEMPLATE: 'gitlab', // the default queue's agents are GitLab runners
    });
    const secrets = {
      enabled: () => true,
      refreshable: () => false,
      get: async () => GITLAB_TOKEN,
      refresh: async () => undefined,
    };
    const queue = {
      sendEvent: async (event: JobEvent) => {
        sent.push(event);
        return {};
      },
    };
    return { sent, webhook: createWebhookHandler({ config, secrets, queue }) };
  }

  it('an event a provider module got wrong is answered 400 and never sent', async () => {
    const { sent, webhook } = handler();
    const wrong = {
      id: eventId('gitlab', '1977', 'scheduled'),
      provider: 'gitlab',
      jobId: '1977',
      queue: 'default',
      kind: {}, // what `KINDS['__proto__']` used to give
      occurredAt: '2026-11-23T10:00:00.000Z',
      receivedAt: '2026-11-23T10:00:00.000Z',
      trace: {},
    } as unknown as JobEvent;
    vi.spyOn(gitlab, 'parse').mockReturnValue({ kind: 'event', event: wrong });
    const res = await webhook(gitlabRequest(gitlabJob()));
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body).message).toMatch(/no valid job event: kind/);
    expect(sent).toEqual([]);
  });

  it('an adapter refusing an invalid event is a bug (500), not an outage the provider retries (503)', async () => {
    const config = loadWebhookConfig({
      EVENTS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/1/events',
      GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
      JOB_TEMPLATE: 'gitlab', // the default queue's agents are GitLab runners
    });
    const webhook = createWebhookHandler({
      config,
      secrets: {
        enabled: () => true,
        refreshable: () => false,
        get: async () => GITLAB_TOKEN,
        refresh: async () => undefined,
      },
      queue: {
        sendEvent: async () => {
          throw new InvalidJobEventError('kind: invalid');
        },
      },
    });
    expect((await webhook(gitlabRequest(gitlabJob()))).statusCode).toBe(500);
  });

  it('a valid event is sent once', async () => {
    const { sent, webhook } = handler();
    expect((await webhook(gitlabRequest(gitlabJob()))).statusCode).toBe(202);
    expect(sent).toHaveLength(1);
  });
});
