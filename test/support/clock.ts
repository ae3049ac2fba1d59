/**
 * Instants for test data that reaches DynamoDB Local, dated from the real clock.
 *
 * The stores set a TTL attribute from an event's time (the ledger: event time + retention; the
 * route store: now + retention), and DynamoDB Local runs a TTL sweeper that deletes items whose
 * TTL lies in the past, a few at a time, in the background. Data dated on a fixed calendar day
 * therefore passes until that day is older than the retention, then loses items between a write
 * and the read that follows it. `test/unit/test-dates.test.ts` keeps calendar literals out of
 * every test that starts DynamoDB Local.
 */

/** The tests' "now": the real clock at module load, cut to a whole minute so offsets read well. */
export const TEST_NOW = new Date(Math.floor(Date.now() / 60_000) * 60_000);

/** The ISO time `seconds` after `base` (TEST_NOW unless given); negative is before. */
export function at(seconds: number, base: Date = TEST_NOW): string {
  return new Date(base.getTime() + seconds * 1000).toISOString();
}

/** The same instant in Buildkite's and GitLab's webhook format: `2026-11-23 10:00:01 UTC`. */
export function providerTime(seconds: number, base: Date = TEST_NOW): string {
  return `${at(seconds, base).slice(0, 19).replace('T', ' ')} UTC`;
}
