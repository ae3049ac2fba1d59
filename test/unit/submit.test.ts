/**
 * The submit stage (functions/scaler/submit.ts) on its own: a dispatch reserved in the in-memory
 * limiter, its Job created in a cluster in memory.
 */
import { describe, expect, it } from 'vitest';
import { CREATE_ISSUE_SLACK_MS, intentCreateGraceMs } from '../../functions/core/limiter.js';
import type { DispatchRecord } from '../../functions/core/stores.js';
import { provision } from '../../functions/scaler/scaler.js';
import { submitter } from '../../functions/scaler/submit.js';
import type { TickError } from '../../functions/scaler/tick-error.js';
import { jobEvent } from '../support/job-events.js';
import { stageSettings as settings, stagePorts } from '../support/stage-ports.js';

/** A dispatch of `count` agents reserved now, as reserve.ts records it. */
async function reserved(s: ReturnType<typeof stagePorts>, count: number): Promise<DispatchRecord> {
  const now = s.clock.now;
  const dispatch: DispatchRecord = {
    queue: 'q',
    dispatchId: '1',
    jobName: s.ports.jobs.jobName('q', '1'),
    count,
    tokens: count,
    status: 'intent',
    createdAt: now,
    leaseUntil: now + settings.intentLeaseMs,
    attempts: 1,
    settled: 0,
    createsUntil: now + CREATE_ISSUE_SLACK_MS + intentCreateGraceMs(settings.intentLeaseMs),
  };
  expect(await s.limiter.reserve({ queue: 'q', count, max: 10, expectedVersion: 0, dispatch })).toBe('reserved');
  return dispatch;
}

describe('submit', () => {
  it("creates the dispatch's one Job, of `count` agents, and marks the dispatch submitted", async () => {
    const s = stagePorts();
    const dispatch = await reserved(s, 3);
    const errors: TickError[] = [];
    const submissions = submitter(s.ports, settings, errors);
    await submissions.submit(dispatch, s.clock.now);
    expect(errors).toEqual([]);
    expect(submissions.created).toEqual([{ queue: 'q', jobName: dispatch.jobName, count: 3, result: 'created' }]);
    expect(s.jobs.map((j) => [j.metadata?.name, j.spec?.completions, j.spec?.parallelism])).toEqual([
      [dispatch.jobName, 3, 3],
    ]);
    expect((await s.limiter.snapshot()).dispatches.map((d) => d.status)).toEqual(['submitted']);
  });

  it('does not issue a create once its fence has passed: it is left to the next reconcile', async () => {
    const s = stagePorts();
    const dispatch = await reserved(s, 2);
    const fencedAt = s.clock.now;
    s.clock.now += CREATE_ISSUE_SLACK_MS + 1;
    await submitter(s.ports, settings, []).submit(dispatch, fencedAt);
    expect(s.creates).toEqual([]);
    expect((await s.limiter.snapshot()).dispatches.map((d) => d.status)).toEqual(['intent']);
  });

  it('keeps the intent and its tokens when the create fails, and reports it', async () => {
    const s = stagePorts();
    const dispatch = await reserved(s, 2);
    s.refuse.next = 1;
    const errors: TickError[] = [];
    const submissions = submitter(s.ports, settings, errors);
    await submissions.submit(dispatch, s.clock.now);
    expect(submissions.created).toEqual([]);
    expect(errors).toEqual([
      {
        stage: 'submit',
        queue: 'q',
        retryable: true,
        cause: s.refuse.error,
        message: `create ${dispatch.jobName}: Error: Internal Server Error`,
      },
    ]);
    expect(s.lines).toContainEqual({
      level: 'warn',
      message: 'agent Job not created; intent kept for retry',
      queue: 'q',
      jobName: dispatch.jobName,
      error: 'Error: Internal Server Error',
    });
    const after = await s.limiter.snapshot();
    expect(after.dispatches.map((d) => [d.status, d.tokens, d.settled])).toEqual([['intent', 2, 0]]);
  });

  it('settles a create the API server refused (4xx): it can never land', async () => {
    const s = stagePorts();
    const dispatch = await reserved(s, 2);
    s.refuse.next = 1;
    s.refuse.error = Object.assign(new Error('Unprocessable Entity'), { status: 422 });
    const errors: TickError[] = [];
    await submitter(s.ports, settings, errors).submit(dispatch, s.clock.now);
    expect(errors.map((e) => [e.stage, e.retryable])).toEqual([['submit', false]]);
    expect((await s.limiter.snapshot()).dispatches.map((d) => [d.status, d.settled])).toEqual([['intent', 1]]);
  });

  it('resubmits an intent with one more fenced attempt, and creates its Job', async () => {
    const s = stagePorts();
    const dispatch = await reserved(s, 1);
    s.refuse.next = 1;
    await submitter(s.ports, settings, []).submit(dispatch, s.clock.now);
    s.clock.now += 5_000;
    const [intent] = (await s.limiter.snapshot()).dispatches;
    if (!intent) throw new Error('no dispatch');
    const again = submitter(s.ports, settings, []);
    await again.resubmit(intent);
    expect(s.creates).toEqual([dispatch.jobName, dispatch.jobName]);
    expect(again.created.map((c) => c.result)).toEqual(['created']);
    expect((await s.limiter.snapshot()).dispatches.map((d) => [d.status, d.attempts])).toEqual([['submitted', 2]]);
  });
});

describe('a tick that could not create a Job', () => {
  it('reports the failure with its stage, queue and retryability, and its message as before', async () => {
    const s = stagePorts();
    await s.ledger.apply(
      [jobEvent('a', 'scheduled', { queue: 'q', occurredAt: new Date(s.clock.now).toISOString() })],
      new Date(s.clock.now),
    );
    s.refuse.next = 1;
    const report = await provision(s.ports, settings);
    const jobName = s.creates[0];
    expect(report.errors).toEqual([`create ${jobName}: Error: Internal Server Error`]);
    expect(report.failures).toEqual([
      expect.objectContaining({ stage: 'submit', queue: 'q', retryable: true, message: report.errors[0] }),
    ]);
  });
});
