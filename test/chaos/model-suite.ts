/**
 * The CI-sized model-level chaos run, split over two test files (two vitest workers): each
 * checks its seeds in chunks of 1000; a failing seed is shrunk and printed as a replayable
 * schedule (see README, "Chaos suite").
 */
import { expect, it } from 'vitest';
import { WASTE_RATIO } from './model.js';
import { knownFailures, runSeeds } from './seeds.js';
import { report } from './shrink.js';

/** Schedules in CI: 2 files x 5000. */
export const CI_SEEDS_PER_FILE = 5000;
const CHUNK = 1000;
/**
 * Seeds of violations not fixed yet (known-failures.json, replayed by `npm run chaos`): left out
 * of the CI run, and reported to the lead.
 */
const KNOWN = new Set(knownFailures().map((k) => k.seed));

export function modelSuite(firstSeed: number): void {
  for (let from = firstSeed; from < firstSeed + CI_SEEDS_PER_FILE; from += CHUNK) {
    it(`seeds ${from}..${from + CHUNK - 1}: every invariant holds after every step`, async () => {
      const summary = await runSeeds(from, CHUNK, { skip: KNOWN });
      const failing = summary.failures[0];
      const message = failing
        ? `${summary.failures.length} failing seed(s) ${JSON.stringify(summary.byInvariant)}; the first, shrunk:\n${await report(failing, { timeMs: 20_000 })}`
        : '';
      expect(summary.failures.length, message).toBe(0);
      // Over the whole batch too: agents made per agent needed.
      expect(summary.agentsMade / summary.agentsNeeded).toBeLessThanOrEqual(WASTE_RATIO);
    }, 120_000);
  }
}
