import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { busyBound, countCap, decide, ExitedAgents } from '../../functions/core/decision.js';

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

  it('with a warm pool: never exceeds MAX, and keeps `warm` idle agents beyond pending, room allowing', () => {
    for (let pending = 0; pending <= 8; pending++)
      for (let running = 0; running <= 8; running++)
        for (let inFlight = 0; inFlight <= 8; inFlight++)
          for (const warm of [0, 1, 3, 20])
            for (const [min, max] of [
              [0, 1],
              [0, 10],
              [2, 5],
            ] as const) {
              const d = decide({ queue: 'q', pending, running, inFlight, minAgents: min, maxAgents: max, warm });
              expect(d.count).toBeGreaterThanOrEqual(0);
              if (d.count > 0) expect(inFlight + d.count).toBeLessThanOrEqual(max);
              const idle = Math.max(0, inFlight - running);
              const want = Math.max(pending + warm - idle, min - inFlight, 0);
              expect(d.count).toBe(Math.max(0, Math.min(max - inFlight, want)));
            }
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

describe('decide: held tokens and late finished webhooks', () => {
  it('tokens held for a Job that a late create could bring back cap MAX but are no idle agents', () => {
    // 4 tokens held for a deleted Job; 2 live agents, both busy; 3 CI jobs waiting.
    const d = decide({ ...base, pending: 3, running: 2, inFlight: 6, supply: 2, maxAgents: 8 });
    expect(d.idle).toBe(0);
    expect(d.count).toBe(2); // capped by the held tokens, not absorbed by them
    expect(d.reason).toBe('capped');
  });

  it('running CI jobs whose agents already exited do not hide new agents as busy', () => {
    // 3 new agents on their way for 3 waiting CI jobs; the ledger still shows 3 running jobs
    // whose agents exited before the new ones were made (their finished webhooks are late).
    const stale = decide({ ...base, pending: 3, running: 3, inFlight: 3, supply: 3, busyBound: 0 });
    expect(stale.idle).toBe(3);
    expect(stale.count).toBe(0);
    // Without the bound, 3 more agents would be asked for.
    expect(decide({ ...base, pending: 3, running: 3, inFlight: 3, supply: 3 }).count).toBe(3);
  });
});

describe('busyBound: agents that can be running the running CI jobs', () => {
  it('matches each running CI job to an agent made before it started, each agent once', () => {
    const batches = [
      { createdAt: 10_000, count: 2 },
      { createdAt: 50_000, count: 3 },
    ];
    expect(busyBound([], batches, 0)).toBe(0);
    // Started before any agent of ours was made: their agents are gone.
    expect(busyBound([5_000, 6_000], batches, 0)).toBe(0);
    // Three started after the first batch, before the second: only two agents can run them.
    expect(busyBound([20_000, 30_000, 40_000], batches, 0)).toBe(2);
    expect(busyBound([20_000, 30_000, 40_000, 60_000, 70_000], batches, 0)).toBe(4);
    expect(busyBound([60_000, 61_000, 62_000, 63_000, 64_000, 65_000], batches, 0)).toBe(5);
    // The clock skew allowance counts an agent made just after a start.
    expect(busyBound([49_000], [{ createdAt: 50_000, count: 1 }], 2_000)).toBe(1);
  });

  it('never understates the agents really running a CI job (no idle agent is invented)', () => {
    let seed = 7;
    const r = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let run = 0; run < 500; run++) {
      // Agents made at random times; some of them took a CI job after they were made.
      const agents = Array.from({ length: 1 + Math.floor(r() * 12) }, () => ({ createdAt: Math.floor(r() * 100_000) }));
      const busy = agents.filter(() => r() < 0.6).map((a) => a.createdAt + Math.floor(r() * 50_000));
      // Plus stale running jobs (agents gone), started any time.
      const stale = Array.from({ length: Math.floor(r() * 5) }, () => Math.floor(r() * 150_000));
      const bound = busyBound(
        [...busy, ...stale],
        agents.map((a) => ({ createdAt: a.createdAt, count: 1 })),
        0,
      );
      expect(bound).toBeGreaterThanOrEqual(busy.length);
      expect(bound).toBeLessThanOrEqual(Math.min(agents.length, busy.length + stale.length));
    }
  });
});

describe('countCap: the ledger may stop counting there', () => {
  // What the scaler decides from counts (decide.ts): supply <= inFlight, busyBound over the agent
  // batches, and the warm pool on top. The ledger capped at countCap(MAX) gives the same decision.
  const world = fc
    .record({
      pending: fc.nat(200),
      starts: fc.array(fc.nat(100), { maxLength: 120 }),
      batches: fc.array(fc.record({ createdAt: fc.nat(100), count: fc.nat(8) }), { maxLength: 10 }),
      inFlight: fc.nat(60),
      held: fc.nat(10),
      warm: fc.nat(10),
      minAgents: fc.nat(10),
      extra: fc.nat(40),
    })
    .map(({ extra, ...w }) => ({ ...w, maxAgents: w.minAgents + extra }));

  const decideFrom = (w: typeof world extends fc.Arbitrary<infer T> ? T : never, pending: number, starts: number[]) => {
    const supply = Math.min(
      w.batches.reduce((n, b) => n + b.count, 0),
      Math.max(0, w.inFlight - w.held),
    );
    return decide({
      queue: 'q',
      pending,
      running: starts.length,
      inFlight: w.inFlight,
      supply,
      busyBound: busyBound(
        starts.map((s) => s * 1000),
        w.batches.map((b) => ({ createdAt: b.createdAt * 1000, count: b.count })),
      ),
      minAgents: w.minAgents,
      maxAgents: w.maxAgents,
      warm: w.warm,
    });
  };

  it('decides the same count, for the same reason, on counts capped at countCap(MAX)', () => {
    fc.assert(
      fc.property(world, (w) => {
        const cap = countCap(w.maxAgents);
        const sorted = [...w.starts].sort((a, b) => a - b);
        const full = decideFrom(w, w.pending, sorted);
        // What a capped store returns: pending up to the cap, the cap latest start times.
        const capped = decideFrom(w, Math.min(w.pending, cap), sorted.slice(Math.max(0, sorted.length - cap)));
        expect(capped.count).toBe(full.count);
        // The logged reason and idle figure too, unless more is in flight than MAX (MAX lowered
        // under live agents): then nothing is asked for either way.
        if (w.inFlight <= w.maxAgents) {
          expect({ reason: capped.reason, idle: capped.idle }).toEqual({ reason: full.reason, idle: full.idle });
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a smaller cap would change decisions: MAX alone is not enough for the reason', () => {
    // pending = MAX exactly with nothing in flight: 'demand'; one more pending job is 'capped'.
    expect(decide({ ...base, pending: 10 }).reason).toBe('demand');
    expect(decide({ ...base, pending: countCap(10) }).reason).toBe('capped');
    expect(countCap(10)).toBe(11);
  });
});

describe('decide: agents that exited before their events were applied', () => {
  it('pending CI jobs whose agents already ran them and exited get no agent again', () => {
    // 4 CI jobs still pending in the ledger (`started` late too), their 4 agents gone.
    expect(decide({ ...base, pending: 4, exited: 4 }).count).toBe(0);
    expect(decide({ ...base, pending: 6, exited: 4 }).count).toBe(2);
    expect(decide({ ...base, pending: 4 }).count).toBe(4);
  });

  it('an exit busyBound already accounts for is not taken off twice', () => {
    // 2 running CI jobs whose agents are gone (busyBound 0) and 2 exits: the same 2 CI jobs.
    const d = decide({ ...base, pending: 3, running: 2, inFlight: 0, busyBound: 0, exited: 2 });
    expect(d.gone).toBe(0);
    expect(d.count).toBe(3);
    // With the live agent counted busy (busyBound 1), one exit is a job busyBound did not see.
    expect(decide({ ...base, pending: 3, running: 2, inFlight: 1, busyBound: 1, exited: 2 }).count).toBe(2);
  });

  it('never asks fewer agents than without exits beyond the exits, nor more', () => {
    fc.assert(
      fc.property(
        fc.nat(20),
        fc.nat(20),
        fc.nat(12),
        fc.nat(20),
        fc.nat(20),
        (pending, running, inFlight, bound, exited) => {
          const o = { ...base, pending, running, inFlight, busyBound: bound };
          const without = decide(o).count;
          const withExits = decide({ ...o, exited }).count;
          expect(withExits).toBeLessThanOrEqual(without);
          expect(withExits).toBeGreaterThanOrEqual(without - exited);
        },
      ),
    );
  });
});

describe('ExitedAgents: exits not yet explained by a finished event', () => {
  const job = (jobName: string, succeeded: number) => ({ jobName, queue: 'q', succeeded });

  it('counts the rise of succeeded agents after the first look, each until a finished event explains it', () => {
    const e = new ExitedAgents();
    e.observe([job('a', 2)], 0); // first look: taken stock of, not counted
    expect(e.count('q', 0)).toBe(0);
    e.observe([job('a', 3), job('b', 2)], 1_000);
    expect(e.count('q', 1_000)).toBe(3);
    e.applied('q', 'started', 500, 1_500);
    expect(e.count('q', 1_500)).toBe(3);
    e.applied('q', 'finished', 900, 2_000);
    e.applied('q', 'cancelled', 950, 2_000);
    expect(e.count('q', 2_000)).toBe(1);
    expect(e.count('other', 2_000)).toBe(0);
    // A Job that is gone and a listed Job whose count did not move add nothing.
    e.observe([job('b', 2)], 3_000);
    expect(e.count('q', 3_000)).toBe(1);
  });

  it('a finished event applied before its exit is seen explains that exit', () => {
    const e = new ExitedAgents({ creditMs: 10_000 });
    e.observe([], 0);
    e.applied('q', 'finished', 0, 1_000);
    e.observe([job('a', 1)], 2_000);
    expect(e.count('q', 2_000)).toBe(0);
    // ... but not one seen after creditMs.
    e.applied('q', 'finished', 2_500, 3_000);
    e.observe([job('a', 2)], 14_000);
    expect(e.count('q', 14_000)).toBe(1);
  });

  it('forgets an exit once events that happened marginMs after it are applied (an agent that left idle)', () => {
    const e = new ExitedAgents({ marginMs: 5_000, maxAgeMs: 60_000 });
    e.observe([], 0);
    e.observe([job('a', 1)], 10_000);
    e.applied('q', 'scheduled', 14_000, 20_000);
    expect(e.count('q', 20_000)).toBe(1);
    e.applied('q', 'scheduled', 15_000, 21_000);
    expect(e.count('q', 21_000)).toBe(0);
    // A drain that found every event sent until 5 s after an exit applied forgets it too.
    const quiet = new ExitedAgents({ marginMs: 5_000 });
    quiet.observe([], 0);
    quiet.observe([job('w', 1)], 10_000);
    quiet.drained(14_000);
    expect(quiet.count('q', 14_000)).toBe(1);
    quiet.drained(15_000);
    expect(quiet.count('q', 15_000)).toBe(0);
    // Without any event applied, never beyond maxAgeMs.
    e.observe([job('a', 2)], 30_000);
    expect(e.count('q', 90_000)).toBe(1);
    expect(e.count('q', 90_001)).toBe(0);
  });
});

describe('decide: scaleDown, the warm pool surplus to stop', () => {
  it('idle agents beyond pending and the pool, never below MIN_AGENTS; none without a warm pool', () => {
    expect(decide({ ...base, inFlight: 6, warm: 2 }).scaleDown).toBe(4);
    expect(decide({ ...base, pending: 1, running: 1, inFlight: 6, warm: 2 }).scaleDown).toBe(2);
    expect(decide({ ...base, inFlight: 6, warm: 2, minAgents: 5 }).scaleDown).toBe(1);
    expect(decide({ ...base, inFlight: 6, warm: 6 }).scaleDown).toBeUndefined();
    expect(decide({ ...base, inFlight: 6 }).scaleDown).toBeUndefined();
  });

  it('an exit not explained yet (maybe an agent just stopped, idle) adds nothing to the surplus', () => {
    // 5 agents, one busy; one exit the events have not explained: as a CI job's it would make
    // pending - gone = -1 and one more agent surplus.
    const d = decide({ ...base, running: 1, inFlight: 5, busyBound: 1, exited: 1, warm: 2 });
    expect(d).toMatchObject({ idle: 4, gone: 1, count: 0 });
    expect(d.scaleDown).toBe(2);
  });

  it("agents whose CI job's finished is applied and whose exit is not seen yet are leaving: not surplus to stop", () => {
    // 6 agents, none busy by the ledger any more: 2 of them just finished their CI jobs and are
    // exiting. Counted as idle they would make 2 more stops, of agents the pool wants.
    const d = decide({ ...base, inFlight: 6, warm: 2, leaving: 2 });
    expect(d).toMatchObject({ idle: 6, count: 0, scaleDown: 2 });
    expect(decide({ ...base, inFlight: 6, warm: 2 }).scaleDown).toBe(4);
    expect(decide({ ...base, inFlight: 6, warm: 2, leaving: 4 }).scaleDown).toBeUndefined();
    // Leaving agents change only the surplus, not what is made.
    expect(decide({ ...base, pending: 3, inFlight: 2, leaving: 2 }).count).toBe(1);
  });
});

describe('ExitedAgents.leaving: finished events still waiting for their agent to exit', () => {
  const job = (jobName: string, succeeded: number) => ({ jobName, queue: 'q', succeeded });

  it('each finished event counts until its exit is seen, or creditMs has passed', () => {
    const e = new ExitedAgents({ creditMs: 10_000 });
    e.observe([job('a', 0)], 0);
    e.applied('q', 'finished', 0, 1_000);
    e.applied('q', 'finished', 0, 2_000);
    expect(e.leaving('q', 2_000)).toBe(2);
    expect(e.leaving('other', 2_000)).toBe(0);
    e.observe([job('a', 1)], 3_000); // one agent exited: its event is explained
    expect(e.leaving('q', 3_000)).toBe(1);
    expect(e.leaving('q', 12_001)).toBe(0);
  });
});
