import { describe, expect, it } from 'vitest';
import {
  ArrivalModel,
  BUCKET_MS,
  CANDIDATE_SHARES,
  DAY_MS,
  dayBucketOf,
  decodeArrivals,
  encodeArrivals,
  mergeArrivals,
  weekBucketOf,
  withinStartup,
} from '../../functions/core/arrival-model.js';
import { decide } from '../../functions/core/decision.js';
import { WarmPoolTracker } from '../../functions/core/warm-pool.js';
import { generatorHistory, trainingSeeds } from '../../tools/simulate/history.js';

const MONDAY = Date.UTC(2026, 10, 23); // Monday 2026-11-23 00:00 UTC
const at = (day: number, hours: number, minutes = 0, seconds = 0) =>
  MONDAY + day * DAY_MS + ((hours * 60 + minutes) * 60 + seconds) * 1000;

/** `days` days before `MONDAY + today days`, each with `perDay` arrivals spread over 10:00-10:15. */
function trained(days: number, perDay: number, today = days): ArrivalModel {
  const m = new ArrivalModel({ learnOnline: false });
  for (let d = today - days; d < today; d++) {
    const arrivals = Array.from({ length: perDay }, (_, i) => at(d, 10, 0, (i * 900) / perDay));
    m.learnPeriod('q', at(d, 0), at(d + 1, 0), arrivals, 18);
  }
  return m;
}

/** Seven past days, each with builds of 1..6 jobs at 10:00, 10:02, .. 10:10 (one job a second). */
function sixBuilds(): ArrivalModel {
  const m = new ArrivalModel({ learnOnline: false });
  for (let d = 0; d < 7; d++) {
    const arrivals = [1, 2, 3, 4, 5, 6].flatMap((size, b) =>
      Array.from({ length: size }, (_, i) => at(d, 10, 2 * b, i)),
    );
    m.learnPeriod('q', at(d, 0), at(d + 1, 0), arrivals, 18);
  }
  return m;
}

describe('learned arrival model (core/arrival-model.ts)', () => {
  it('buckets time by the quarter hour of the UTC week (Monday 00:00 = 0) and of the day', () => {
    expect(weekBucketOf(MONDAY)).toBe(0);
    expect(weekBucketOf(at(0, 8))).toBe(32);
    expect(weekBucketOf(at(6, 23, 59))).toBe(671);
    expect(weekBucketOf(at(7, 0))).toBe(0);
    expect(dayBucketOf(at(3, 10, 14))).toBe(40);
  });

  it('counts, for each arrival, the arrivals within one start-up up to it (a build of 4: one of each)', () => {
    const burst = [0, 1, 2, 3].map((s) => s * 1000);
    expect(withinStartup(burst, 18)).toEqual([1, 1, 1, 1]);
    expect(withinStartup([0, 60_000], 18)).toEqual([2]);
    expect(withinStartup([], 18)).toEqual([]);
  });

  it('learns the expected arrivals per bucket from past days: the mean of the days, then weighted to the newest', () => {
    const m = trained(3, 12);
    expect(m.expected('q', at(3, 10, 5))).toBeCloseTo(12);
    expect(m.expected('q', at(3, 11))).toBe(0);
    // A busier day moves the estimate a quarter of the way (alpha 0.25) once there are 4+ samples.
    const arrivals = Array.from({ length: 40 }, (_, i) => at(3, 10, 0, i * 20));
    const busier = trained(4, 12);
    busier.learnPeriod(
      'q',
      at(4, 0),
      at(5, 0),
      arrivals.map((t) => t + DAY_MS),
      18,
    );
    expect(busier.expected('q', at(5, 10, 5))).toBeCloseTo(12 + 0.25 * (40 - 12));
  });

  it('keeps a pool one start-up ahead only in the busy bucket, and gives no target without history', () => {
    const m = trained(7, 30);
    expect(new ArrivalModel().target('q', at(7, 10, 5), 18)).toBeUndefined();
    expect(m.target('q', at(7, 9, 30), 18)).toBe(0); // a quiet bucket
    expect(m.target('q', at(7, 9, 59, 50), 18)).toBeGreaterThan(0); // 10:00 is 10 s away: start now
    expect(m.target('q', at(7, 10, 5), 18)).toBeGreaterThan(0);
    expect(m.target('q', at(7, 10, 20), 18)).toBe(0); // the bucket is over
  });

  it("scales the pool up by today's observed-to-expected arrivals, never below the learned pool", () => {
    // The k-th agent would have served 7 - k jobs, so the price stops the pool short of 6.
    const usual = sixBuilds();
    const busy = sixBuilds();
    const quiet = sixBuilds();
    const now = at(7, 10, 10);
    // Today so far: about the usual 14 by 10:10, or 300, or none.
    for (let i = 0; i < 300; i++) busy.arrived('q', at(7, 9, 0, i), at(7, 9, 0, i));
    for (let i = 0; i < 14; i++) usual.arrived('q', at(7, 10, 0, i * 30), at(7, 10, 0, i * 30));
    quiet.arrived('q', at(7, 0, 0), at(7, 0, 0)); // watched since midnight, nothing since
    const base = usual.target('q', now, 18) ?? 0;
    expect(base).toBeGreaterThan(0);
    expect(base).toBeLessThan(6);
    expect(busy.scale('q', now)).toBeGreaterThan(2);
    expect(busy.target('q', now, 18)).toBeGreaterThan(base);
    expect(quiet.scale('q', now)).toBe(1);
    expect(quiet.target('q', now, 18)).toBe(base);
  });

  it('learns online: a bucket is learned once it is over, not before', () => {
    const m = new ArrivalModel();
    for (let i = 0; i < 10; i++) m.arrived('q', at(0, 10, i), at(0, 10, i));
    expect(m.expected('q', at(1, 10, 5))).toBeUndefined();
    m.roll('q', at(0, 10, 15));
    expect(m.expected('q', at(1, 10, 5))).toBeCloseTo(10);
  });

  it('sizes the tracker from the learned model when it has history, from recent arrivals otherwise', () => {
    const learned = new WarmPoolTracker({ startupPriorSeconds: 15 }, trained(7, 30));
    const size = learned.size('q', at(7, 10, 5));
    expect(size.warm).toBeGreaterThan(0);
    expect(size.learnedScale).toBe(1);
    expect(learned.size('other', at(7, 10, 5))).toMatchObject({ warm: 0 });
    expect(learned.size('other', at(7, 10, 5)).learnedScale).toBeUndefined();
  });

  it('rejects a share outside (0, 1] and a learnBucket off a bucket start', () => {
    expect(() => new ArrivalModel({ share: 0 })).toThrow(/share/);
    expect(() => new ArrivalModel().learnBucket('q', MONDAY + 1, [], 18)).toThrow(/start of a bucket/);
    expect(BUCKET_MS).toBe(900_000);
  });
});

describe("the pool counts the bucket's arrivals already seen (issue 19 point 2: remaining = expected - seen)", () => {
  /** 7 past days, each with a run of 8 jobs at 10:00:00..10:00:07, watched today from 9:00 on. */
  function dailyRun(): ArrivalModel {
    const m = new ArrivalModel({ learnOnline: false });
    for (let d = 0; d < 7; d++)
      m.learnPeriod(
        'q',
        at(d, 0),
        at(d + 1, 0),
        Array.from({ length: 8 }, (_, k) => at(d, 10, 0, k)),
        18,
      );
    m.target('q', at(7, 9), 18);
    return m;
  }
  /** Today's jobs `from` to `to` - 1 of the run (job k at 10:00:0k). */
  const run = (m: ArrivalModel, from: number, to: number) => {
    for (let k = from; k < to; k++) m.arrived('q', at(7, 10, 0, k), at(7, 10, 0, k));
  };

  it('a run of 8 jobs every day at 10:00: 8 agents ready before it, none kept once its 8 jobs came', () => {
    const m = dailyRun();
    expect(m.target('q', at(7, 9, 59, 45), 18)).toBe(8);
    run(m, 0, 8);
    // Before: still 8, so 8 more agents were made for jobs that had all come, idle until 10:15.
    expect(m.target('q', at(7, 10, 0, 8), 18)).toBe(0);
    expect(new WarmPoolTracker({ startupPriorSeconds: 15 }, m).size('q', at(7, 10, 0, 8)).warm).toBe(0);
  });

  it('once the run began, the pool keeps agents for its jobs still to come, none for those that came', () => {
    const m = dailyRun();
    run(m, 0, 1);
    expect(m.target('q', at(7, 10, 0, 1), 18)).toBe(7); // before: 8 (a replacement for the job taken)
    run(m, 1, 4);
    expect(m.target('q', at(7, 10, 0, 4), 18)).toBe(4); // before: 8
  });

  it('a bucket of builds that has not had its expected arrivals yet keeps the learned pool', () => {
    // 21 arrivals expected, within[0] = 6 builds; watched since 09:00.
    const watched = () => {
      const m = sixBuilds();
      m.target('q', at(7, 9), 18);
      return m;
    };
    const none = watched();
    const some = watched();
    // A build of 6 at 10:00: 6 of the 21 expected, the bucket's other builds may still come.
    for (let i = 0; i < 6; i++) some.arrived('q', at(7, 10, 0, i), at(7, 10, 0, i));
    const now = at(7, 10, 1);
    expect(none.target('q', now, 18)).toBeGreaterThan(0);
    expect(some.target('q', now, 18)).toBe(none.target('q', now, 18));
  });
});

describe('the simulator trains ours-warm on other days, never the scored one (tools/simulate/history.ts)', () => {
  it('uses seeds other than the scored seed, on the days before the scored day', () => {
    expect(trainingSeeds(1, 14)).not.toContain(1);
    expect(new Set(trainingSeeds(7, 14)).size).toBe(14);
    const epoch = at(0, 8);
    const days = generatorHistory('bursty', 50, 1, epoch, 3);
    expect(days.map((d) => d.startMs)).toEqual([epoch - DAY_MS, epoch - 2 * DAY_MS, epoch - 3 * DAY_MS]);
    for (const d of days) expect(d.jobs.length).toBe(50);
  });
});

describe('scale-down of surplus idle agents (core/decision.ts scaleDown)', () => {
  it('deletes idle agents beyond pending demand and the pool when the target drops', () => {
    const base = { queue: 'q', running: 0, minAgents: 0, maxAgents: 10 };
    expect(decide({ ...base, pending: 0, inFlight: 3, warm: 1 })).toMatchObject({ count: 0, scaleDown: 2 });
    expect(decide({ ...base, pending: 1, inFlight: 3, warm: 0 })).toMatchObject({ count: 0, scaleDown: 2 });
    expect(decide({ ...base, pending: 0, inFlight: 3, warm: 3 }).scaleDown).toBeUndefined();
    // Never below MIN_AGENTS, and busy agents are not idle.
    expect(decide({ ...base, minAgents: 2, pending: 0, inFlight: 3, warm: 0 }).scaleDown).toBe(1);
    expect(decide({ ...base, running: 2, pending: 0, inFlight: 3, warm: 0 }).scaleDown).toBe(1);
  });

  it('without a warm pool nothing is deleted (idle agents leave on their own timeout)', () => {
    expect(
      decide({ queue: 'q', pending: 0, running: 0, inFlight: 3, minAgents: 0, maxAgents: 10 }).scaleDown,
    ).toBeUndefined();
  });
});

describe('learning kept in the ledger table (core/arrival-model.ts mergeArrivals, encode/decode)', () => {
  it('sizes no pool until every quarter hour of the day is learned: an hour of history knows nothing of the rest', () => {
    const m = new ArrivalModel({ learnOnline: false });
    const busy = Array.from({ length: 30 }, (_, i) => at(0, 10, 0, i * 30));
    m.learnPeriod('q', at(0, 0), at(0, 23, 45), busy, 18); // 95 of the 96 buckets
    expect(m.target('q', at(1, 10, 5), 18)).toBeUndefined();
    m.learnPeriod('q', at(0, 23, 45), at(1, 0), [], 18);
    expect(m.target('q', at(1, 10, 5), 18)).toBeGreaterThan(0);
  });

  it('learns a bucket 5 minutes after it ended, with late arrivals; drops arrivals of a bucket already learned', () => {
    const open = mergeArrivals(undefined, [at(0, 10, 1), at(0, 10, 2)], at(0, 10, 3), 18);
    expect(open.open).toEqual({ start: at(0, 10), arrivals: [at(0, 10, 1), at(0, 10, 2)] });
    expect(open.history.week.size).toBe(0);
    // 10:17: the bucket ended, its grace has not: a late arrival still joins it.
    const late = mergeArrivals(open, [at(0, 10, 14)], at(0, 10, 17), 18);
    expect(late.history.week.size).toBe(0);
    const learned = mergeArrivals(late, [at(0, 10, 16)], at(0, 10, 21), 18);
    expect(learned.history.week.get(weekBucketOf(at(0, 10)))?.arrivals).toBe(3);
    expect(learned.open).toEqual({ start: at(0, 10, 15), arrivals: [at(0, 10, 16)] });
    // An arrival of 10:00-10:15 seen only now is dropped, not learned into a later bucket.
    const dropped = mergeArrivals(learned, [at(0, 10, 5)], at(0, 10, 22), 18);
    expect(dropped.open?.arrivals).toEqual([at(0, 10, 16)]);
  });

  it('round-trips the stored text, and names what is wrong in a bad one', () => {
    const m = trained(2, 12);
    const history = m.history('q');
    if (!history) throw new Error('no history');
    const back = decodeArrivals(encodeArrivals({ history, open: { start: at(2, 0), arrivals: [at(2, 0, 1)] } }));
    expect(back.open).toEqual({ start: at(2, 0), arrivals: [at(2, 0, 1)] });
    expect(back.history.day.get(dayBucketOf(at(0, 10)))?.arrivals).toBeCloseTo(12);
    expect(() => decodeArrivals('{"week":[[700,1,2]],"day":[]}')).toThrow('week bucket 700 out of range');
    expect(() => decodeArrivals('{"week":[],"day":"x"}')).toThrow('day is not a list');
  });
});

describe('the share aimed at p50 wait <= the reaction, from days scored out of sample', () => {
  /** Days with a build of `size` jobs at 10:00 (within 5 s) and 20 spread jobs over 10:00-11:00. */
  function dayArrivals(d: number, size: number): number[] {
    return [
      ...Array.from({ length: size }, (_, i) => at(d, 10, 0, (i * 5) / size)),
      ...Array.from({ length: 20 }, (_, i) => at(d, 10, 0, 7 + i * 180)),
    ];
  }

  it('scores a day only with 3 days learned before it, and keeps the prior share until 5 days are scored', () => {
    const m = new ArrivalModel({ learnOnline: false });
    for (let d = 0; d < 7; d++) m.learnPeriod('q', at(d, 0), at(d + 1, 0), dayArrivals(d, 10), 18);
    // Days 3..5 scored (day 6 closes when day 7 begins): 3 < 5.
    expect(m.history('q')?.days).toHaveLength(3);
    expect(m.share('q')).toBe(0.56);
    m.learnPeriod('q', at(7, 0), at(9, 0), [...dayArrivals(7, 10), ...dayArrivals(8, 10)], 18);
    expect(m.history('q')?.days).toHaveLength(5);
  });

  it('alike days: the least share whose pool had half the arrivals ready; scattered days: a higher one', () => {
    const alike = new ArrivalModel({ learnOnline: false });
    for (let d = 0; d < 12; d++) alike.learnPeriod('q', at(d, 0), at(d + 1, 0), dayArrivals(d, 10), 18);
    const days = alike.history('q')?.days ?? [];
    const j = CANDIDATE_SHARES.indexOf(alike.share('q'));
    expect(j).toBeGreaterThanOrEqual(0);
    // At least 80 % of the scored days reached 0.5 at the chosen share, fewer at the one below.
    const reached = (k: number) => days.filter((d) => (d[k] ?? 0) >= 0.5).length / days.length;
    expect(reached(j)).toBeGreaterThanOrEqual(0.8);
    if (j > 0) expect(reached(j - 1)).toBeLessThan(0.8);
    // Builds of 2 to 30 jobs on alternate days: a day's share served scatters, the share rises.
    const scattered = new ArrivalModel({ learnOnline: false });
    for (let d = 0; d < 12; d++) scattered.learnPeriod('q', at(d, 0), at(d + 1, 0), dayArrivals(d, d % 2 ? 30 : 2), 18);
    expect(scattered.share('q')).toBeGreaterThan(alike.share('q'));
  });

  it('keeps the scores through the stored text (a scaler invocation resumes the day being scored)', () => {
    const m = new ArrivalModel({ learnOnline: false });
    for (let d = 0; d < 9; d++) m.learnPeriod('q', at(d, 0), at(d + 1, 0), dayArrivals(d, 10), 18);
    m.learnPeriod('q', at(9, 0), at(9, 12), dayArrivals(9, 10), 18);
    const history = m.history('q');
    if (!history) throw new Error('no history');
    const back = decodeArrivals(encodeArrivals({ history })).history;
    expect(back.days?.length).toBe(history.days?.length);
    expect(back.scoring?.day).toBe(history.scoring?.day);
    expect(back.scoring?.total).toBe(history.scoring?.total);
    const n = new ArrivalModel({ learnOnline: false });
    n.load('q', back);
    expect(n.share('q')).toBe(m.share('q'));
  });
});
