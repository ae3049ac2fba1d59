import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide } from '../../functions/core/decision.js';

const base = { queue: 'default', pending: 0, running: 0, inFlight: 0, minAgents: 0, maxAgents: 10 };

describe('decide: agents missing per queue', () => {
  it.each([
    // pending, running, inFlight, min, max -> count, reason
    { name: 'idle queue asks nothing', o: {}, count: 0, reason: 'none' },
    { name: 'each pending job gets an agent', o: { pending: 3 }, count: 3, reason: 'demand' },
    { name: 'burst is capped at MAX', o: { pending: 25 }, count: 10, reason: 'capped' },
    {
      name: 'cap counts agents already in flight',
      o: { pending: 25, inFlight: 4, running: 4 },
      count: 6,
      reason: 'capped',
    },
    {
      name: 'idle agents (pods still pending) absorb pending jobs',
      o: { pending: 3, inFlight: 3 },
      count: 0,
      reason: 'none',
    },
    { name: 'partly covered by idle agents', o: { pending: 5, inFlight: 3, running: 1 }, count: 3, reason: 'demand' },
    {
      name: 'busy agents do not absorb pending jobs',
      o: { pending: 2, inFlight: 4, running: 4 },
      count: 2,
      reason: 'demand',
    },
    { name: 'warm floor from nothing', o: { minAgents: 2 }, count: 2, reason: 'floor' },
    { name: 'floor is not added on top of demand', o: { minAgents: 2, pending: 3 }, count: 3, reason: 'demand' },
    { name: 'floor already met by agents in flight', o: { minAgents: 2, inFlight: 2 }, count: 0, reason: 'none' },
    { name: 'floor tops up', o: { minAgents: 3, inFlight: 1, running: 1 }, count: 2, reason: 'floor' },
    { name: 'at MAX nothing more', o: { pending: 4, inFlight: 10, running: 10 }, count: 0, reason: 'capped' },
    {
      name: 'over MAX (drift) never negative',
      o: { pending: 4, inFlight: 12, running: 12 },
      count: 0,
      reason: 'capped',
    },
    {
      name: 'running beyond inFlight (agents from elsewhere) leaves idle at 0',
      o: { pending: 2, inFlight: 1, running: 5 },
      count: 2,
      reason: 'demand',
    },
    {
      name: 'more idle agents than pending asks nothing',
      o: { pending: 1, inFlight: 5, running: 1 },
      count: 0,
      reason: 'none',
    },
  ])('$name', ({ o, count, reason }) => {
    const d = decide({ ...base, ...o });
    expect(d.count).toBe(count);
    expect(d.reason).toBe(reason);
  });

  // Properties over arbitrary observations (MIN <= MAX, as the config guarantees).
  const observation = fc
    .record({
      pending: fc.nat(60),
      running: fc.nat(60),
      inFlight: fc.nat(60),
      minAgents: fc.nat(20),
      extra: fc.nat(40),
    })
    .map(({ extra, ...o }) => ({ queue: 'q', ...o, maxAgents: o.minAgents + extra }));

  it('never asks for more than MAX minus what is in flight, and never a negative count', () => {
    fc.assert(
      fc.property(observation, (o) => {
        const d = decide(o);
        expect(d.count).toBeGreaterThanOrEqual(0);
        expect(d.count).toBeLessThanOrEqual(Math.max(0, o.maxAgents - o.inFlight));
      }),
    );
  });

  it('keeps the warm floor: at least MIN in flight afterwards', () => {
    fc.assert(
      fc.property(observation, (o) => {
        const after = o.inFlight + decide(o).count;
        expect(after).toBeGreaterThanOrEqual(o.minAgents);
      }),
    );
  });

  it('gives every pending job not taken by an idle agent an agent, room allowing, and no more', () => {
    fc.assert(
      fc.property(observation, (o) => {
        const d = decide(o);
        const uncovered = o.pending - Math.max(0, o.inFlight - o.running);
        const room = Math.max(0, o.maxAgents - o.inFlight);
        expect(d.count).toBeGreaterThanOrEqual(Math.min(room, uncovered));
        // Beyond demand only the floor may add agents.
        expect(d.count).toBeLessThanOrEqual(Math.max(uncovered, o.minAgents - o.inFlight, 0));
      }),
    );
  });

  it('is monotone in pending: more waiting jobs never means fewer agents', () => {
    fc.assert(
      fc.property(observation, fc.nat(30), (o, more) => {
        expect(decide({ ...o, pending: o.pending + more }).count).toBeGreaterThanOrEqual(decide(o).count);
      }),
    );
  });

  it('says capped exactly when MAX stopped it from asking what was missing', () => {
    fc.assert(
      fc.property(observation, (o) => {
        const uncapped = decide({ ...o, maxAgents: Number.MAX_SAFE_INTEGER });
        const d = decide(o);
        expect(d.reason === 'capped').toBe(d.count < uncapped.count);
      }),
    );
  });
});
