/**
 * Guard: no test that starts DynamoDB Local dates its data on a calendar day.
 *
 * The stores write a TTL attribute computed from an event's time, and DynamoDB Local deletes
 * items whose TTL has passed in the background. A test dated on a fixed day passes until that
 * day is older than the retention, then loses items between a write and the next read (issue 17:
 * 2026-11-23 broke the ledger suite a week later). Such tests take their instants from
 * test/support/clock.ts, which reads the real clock.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const TEST_DIR = join(import.meta.dirname, '..');

/** Literals that pin an instant to a calendar day: ISO or provider date-times, Date.UTC(…). */
const CALENDAR = [/\b(19|20)\d\d-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d/, /\bDate\.UTC\(\s*\d/];
/** A file that starts, or talks to, DynamoDB Local. */
const DYNAMODB_LOCAL = /\b(startDynamoDbLocal|localDynamoDbClient)\b/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'fixtures' ? [] : sources(path);
    return /\.ts$/.test(entry.name) ? [path] : [];
  });
}

/** Each offending line of a file, as `path:line: text`. */
function calendarDates(path: string, text: string): string[] {
  return text.split('\n').flatMap((line, i) => {
    const code = line.replace(/\/\/.*$/, '');
    return CALENDAR.some((re) => re.test(code)) ? [`${path}:${i + 1}: ${line.trim()}`] : [];
  });
}

describe('test data written to DynamoDB Local is dated from the real clock', () => {
  it('finds a calendar literal where one is written (the check can fail)', () => {
    expect(calendarDates('x.ts', "const NOW = new Date('2026-11-23T12:00:00Z');")).toHaveLength(1);
    expect(calendarDates('x.ts', "created_at: '2026-11-23 10:00:00 UTC',")).toHaveLength(1);
    expect(calendarDates('x.ts', 'const T0 = Date.UTC(2026, 10, 23);')).toHaveLength(1);
    expect(calendarDates('x.ts', 'const NOW = TEST_NOW; // was 2026-11-23T12:00')).toEqual([]);
  });

  it('no test that starts DynamoDB Local holds one', () => {
    const offending = sources(TEST_DIR)
      .filter((path) => !path.endsWith('test-dates.test.ts'))
      .flatMap((path) => {
        const text = readFileSync(path, 'utf8');
        return DYNAMODB_LOCAL.test(text) ? calendarDates(relative(TEST_DIR, path), text) : [];
      });
    expect(offending, 'date these from test/support/clock.ts (TEST_NOW, at(), providerTime())').toEqual([]);
  });
});
