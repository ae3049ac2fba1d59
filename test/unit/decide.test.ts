/**
 * The decide stage (functions/scaler/decide.ts) on its own: a queue's decider over what one
 * reconcile read (the in-memory ledger and limiter, a cluster in memory), and its log line.
 */
import { describe, expect, it } from 'vitest';
import { queueDecider, reportDecision } from '../../functions/scaler/decide.js';
import { reconcile, snapshot } from '../../functions/scaler/reconcile.js';
import { provision } from '../../functions/scaler/scaler.js';
import { submitter } from '../../functions/scaler/submit.js';
import type { TickError } from '../../functions/scaler/tick-error.js';
import { jobEvent } from '../support/job-events.js';
import { stageSettings as settings, stagePorts } from '../support/stage-ports.js';

function stack() {
  const s = stagePorts();
  const { clock, ledger, ports } = s;
  const schedule = (ids: string[]) =>
    ledger.apply(
      ids.map((id) => jobEvent(id, 'scheduled', { queue: 'q', occurredAt: new Date(clock.now).toISOString() })),
      new Date(clock.now),
    );
  /** The decider of queue `q` over a fresh reconcile. */
  const deciderNow = async () => {
    const errors: TickError[] = [];
    const seen = await snapshot(ports, settings, errors);
    const reconciled = await reconcile(ports, settings, seen, submitter(ports, settings, errors), errors);
    return { decider: queueDecider(ports, settings, seen.counts, reconciled, 'q'), reconciled };
  };
  return { ...s, schedule, deciderNow };
}

describe('decide', () => {
  it('asks for one agent per pending CI job, less what is already in flight', async () => {
    const { schedule, deciderNow } = stack();
    await schedule(['a', 'b', 'c']);
    const { decider } = await deciderNow();
    expect(decider.decide(0)).toMatchObject({ pending: 3, count: 3, reason: 'demand' });
    // Tokens another scaler reserved since the plan are agents on their way.
    expect(decider.decide(2).count).toBe(1);
  });

  it('asks for nothing while the agents of a Job still running cover the pending CI jobs', async () => {
    const { clock, schedule, deciderNow, ports } = stack();
    await schedule(['a', 'b']);
    await provision(ports, settings);
    clock.now += 5_000;
    const { decider, reconciled } = await deciderNow();
    const inFlight = reconciled.views.get('q')?.inFlight ?? 0;
    expect(inFlight).toBe(2);
    expect(decider.decide(inFlight)).toMatchObject({ pending: 2, supply: 2, count: 0, reason: 'none' });
  });

  it("never asks for more than the queue's MAX_AGENTS", async () => {
    const { schedule, deciderNow } = stack();
    await schedule(Array.from({ length: 15 }, (_, i) => `j${i}`));
    const { decider } = await deciderNow();
    expect(decider.decide(0)).toMatchObject({ pending: 15, count: 10, reason: 'capped' });
  });

  it('logs the decision with what it was made from and what was reserved', async () => {
    const { schedule, deciderNow, ports, lines } = stack();
    await schedule(['a']);
    const { decider } = await deciderNow();
    reportDecision(ports, decider, decider.decide(0), 1, 3, { lagMs: 250, appliedAgeMs: 400 });
    expect(lines.filter((l) => l.message === 'scaling decision')).toEqual([
      expect.objectContaining({
        level: 'info',
        queue: 'q',
        pending: 1,
        inFlight: 0,
        count: 1,
        reason: 'demand',
        reserved: 1,
        lagMs: 250,
        appliedAgeMs: 400,
        maxAgents: 10,
      }),
    ]);
  });
});
