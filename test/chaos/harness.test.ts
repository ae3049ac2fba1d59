/**
 * The chaos harness itself: every invariant it checks can fail (each is broken on purpose and
 * must be caught), a schedule replays exactly from its choice list, and a shrunk schedule still
 * breaks the same invariant.
 */
import { describe, expect, it } from 'vitest';
import { runSchedule, type ScheduleOptions, type ScheduleResult, type Violation } from './model.js';
import { shrink } from './shrink.js';

async function firstFailing(
  sabotage: NonNullable<ScheduleOptions['sabotage']>,
  invariant: Violation['invariant'],
): Promise<ScheduleResult | undefined> {
  for (let seed = 0; seed < 300; seed++) {
    const r = await runSchedule({ seed, sabotage });
    if (r.violation?.invariant === invariant) return r;
  }
  return undefined;
}

describe('chaos harness', () => {
  const cases: [NonNullable<ScheduleOptions['sabotage']>, Violation['invariant']][] = [
    ['over-limit', 'max-agents'],
    ['lose-finished', 'event-lost'],
    ['stop-scaling', 'liveness'],
    ['skip-correct', 'limiter-counter'],
  ];
  for (const [sabotage, invariant] of cases) {
    it(`catches a scaler broken on purpose (${sabotage}) as "${invariant}"`, async () => {
      const failing = await firstFailing(sabotage, invariant);
      expect(failing?.violation?.invariant).toBe(invariant);
    });
  }

  it('replays a schedule exactly from its recorded choices', async () => {
    const original = await runSchedule({ seed: 42, trace: true });
    const replayed = await runSchedule({ seed: 0, replay: original.choices, trace: true });
    expect(replayed.log).toEqual(original.log);
    expect(replayed.stats).toEqual(original.stats);
  });

  it('shrinks a failing schedule to a shorter one that breaks the same invariant', async () => {
    const failing = await firstFailing('over-limit', 'max-agents');
    if (!failing) throw new Error('no failing seed');
    const shrunk = await shrink(failing, { timeMs: 15_000, schedule: { sabotage: 'over-limit' } });
    expect(shrunk.result.violation?.invariant).toBe('max-agents');
    expect(shrunk.choices.length).toBeLessThan(failing.choices.length);
    const again = await runSchedule({ seed: failing.seed, replay: shrunk.choices, sabotage: 'over-limit' });
    expect(again.violation?.invariant).toBe('max-agents');
  }, 60_000);
});
