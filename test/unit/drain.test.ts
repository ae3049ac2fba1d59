/**
 * The drain stage (functions/scaler/drain.ts) on its own, over the in-memory ledger and an
 * events queue in memory that keeps what is not deleted.
 */
import { describe, expect, it } from 'vitest';
import type { JobEvent, JobEventKind, QueuedJobEvent } from '../../functions/core/job-event.js';
import { drain } from '../../functions/scaler/drain.js';
import type { EventSource, ReceivedEvent } from '../../functions/scaler/ports.js';
import { jobEvent } from '../support/job-events.js';
import { stagePorts, stageSettings } from '../support/stage-ports.js';

function event(jobId: string, kind: JobEventKind, at: number): JobEvent {
  return jobEvent(jobId, kind, { queue: 'q', occurredAt: new Date(at).toISOString() });
}

/** An SQS-like queue in memory: a received message stays until deleted, and comes back on the next receive. */
function memoryQueue(now: () => number) {
  const messages: ReceivedEvent[] = [];
  const deleted: string[] = [];
  let n = 0;
  let receives = 0;
  const source: EventSource = {
    receive: async ({ max }) => {
      receives++;
      return messages.filter((m) => !deleted.includes(m.receiptHandle)).slice(0, max);
    },
    delete: async (handles) => {
      deleted.push(...handles);
      return [];
    },
  };
  return {
    source,
    deleted,
    receives: () => receives,
    send(event: QueuedJobEvent | undefined, error?: string): string {
      n++;
      messages.push({
        receiptHandle: `r${n}`,
        messageId: `m${n}`,
        receiveCount: 1,
        sentAt: now(),
        ...(event ? { event } : {}),
        ...(error ? { error } : {}),
      });
      return `r${n}`;
    },
  };
}

function stack() {
  const { clock, ledger, lines, ports: base } = stagePorts();
  const queue = memoryQueue(() => clock.now);
  const ports = { ...base, events: queue.source };
  /** The error lines logged, without their level. */
  const errors = () => lines.filter((l) => l.level === 'error').map(({ level: _, ...line }) => line);
  const run = () => drain(ports, stageSettings, 0, clock.now + 60_000);
  return { clock, queue, ledger, errors, run };
}

describe('drain', () => {
  it('applies the events to the ledger and deletes their messages', async () => {
    const { clock, queue, ledger, run } = stack();
    const handles = ['a', 'b', 'c'].map((id) => queue.send(event(id, 'scheduled', clock.now)));
    clock.now += 2_000;
    const report = await run();
    expect(report).toMatchObject({ received: 3, applied: 3, scheduled: 3, failed: 0, invalid: 0, lagMs: 0 });
    expect(report.appliedAgeMs).toBe(2_000);
    expect(queue.deleted.sort()).toEqual(handles.sort());
    const counts = await ledger.counts(['q'], new Date(clock.now));
    expect(counts.q?.pending).toBe(3);
  });

  it('leaves an unparseable message in the queue for the dead-letter queue, and says so once', async () => {
    const { clock, queue, errors, run } = stack();
    const bad = queue.send(undefined, 'body is not JSON');
    const good = queue.send(event('a', 'scheduled', clock.now));
    const report = await run();
    expect(report).toMatchObject({ received: 2, invalid: 1, applied: 1 });
    expect(queue.deleted).toEqual([good]);
    expect(queue.deleted).not.toContain(bad);
    expect(errors()).toEqual([
      {
        message: 'invalid event message set aside for the dead-letter queue',
        messageId: 'm1',
        error: 'body is not JSON',
      },
    ]);
  });

  it('counts a redelivered event as a duplicate, deletes it and does not count it as new demand twice', async () => {
    const { clock, queue, ledger, run } = stack();
    await ledger.apply([event('a', 'scheduled', clock.now)], new Date(clock.now));
    const handle = queue.send(event('a', 'scheduled', clock.now));
    const report = await run();
    expect(report).toMatchObject({ received: 1, applied: 0, duplicates: 1, scheduled: 1 });
    expect(queue.deleted).toEqual([handle]);
    expect((await ledger.counts(['q'], new Date(clock.now))).q?.pending).toBe(1);
  });

  it('keeps an event the ledger could not apply in the queue and reports its age as the lag', async () => {
    const { clock, queue, ledger, errors, run } = stack();
    ledger.failWith = (e) => (e.jobId === 'a' ? 'throttled' : undefined);
    const failed = queue.send(event('a', 'scheduled', clock.now));
    clock.now += 1_000;
    const applied = queue.send(event('b', 'scheduled', clock.now));
    clock.now += 3_000;
    const report = await run();
    expect(report).toMatchObject({ received: 2, applied: 1, failed: 1 });
    expect(report.lagMs).toBe(4_000);
    expect(queue.deleted).toEqual([applied]);
    expect(queue.deleted).not.toContain(failed);
    expect(errors()).toEqual([
      {
        message: 'event not applied; it stays in the queue',
        messageId: 'm1',
        eventId: event('a', 'scheduled', 0).id,
        error: 'throttled',
      },
    ]);
  });

  it('stops at a full batch none of whose events could be applied, instead of cycling the queue', async () => {
    const { clock, queue, ledger, run } = stack();
    ledger.failWith = () => 'table unreachable';
    for (let i = 0; i < 25; i++) queue.send(event(`j${i}`, 'scheduled', clock.now));
    const report = await run();
    expect(queue.receives()).toBe(1);
    expect(report).toMatchObject({ received: 10, applied: 0, failed: 10 });
    expect(queue.deleted).toEqual([]);
  });

  it('leaves an event without a queue in the queue when there is no router', async () => {
    const { clock, queue, errors, run } = stack();
    const { queue: _routed, ...rest } = event('a', 'scheduled', clock.now);
    queue.send({ ...rest, provider: 'gitlab', gitlabProjectId: '7' });
    const report = await run();
    expect(report).toMatchObject({ received: 1, failed: 1, applied: 0 });
    expect(queue.deleted).toEqual([]);
    expect(errors()[0]).toMatchObject({
      message: 'event not routed; it stays in the queue',
      error: 'no router for events without a queue',
    });
  });
});
