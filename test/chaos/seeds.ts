/**
 * Running many seeds of the model-level chaos suite (the CI test and `npm run chaos`), and the
 * file of known failing schedules (known-failures.json) that the long mode replays.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runSchedule, type ScheduleResult, type Violation } from './model.js';

export interface Summary {
  readonly seeds: number;
  readonly failures: ScheduleResult[];
  readonly byInvariant: Partial<Record<Violation['invariant'], number>>;
  readonly steps: number;
  readonly agentsMade: number;
  readonly agentsNeeded: number;
  readonly ms: number;
}

export async function runSeeds(
  from: number,
  count: number,
  options: { skip?: ReadonlySet<number>; onFailure?: (r: ScheduleResult) => void } = {},
): Promise<Summary> {
  const started = performance.now();
  const failures: ScheduleResult[] = [];
  const byInvariant: Partial<Record<Violation['invariant'], number>> = {};
  let steps = 0;
  let agentsMade = 0;
  let agentsNeeded = 0;
  let seeds = 0;
  for (let seed = from; seed < from + count; seed++) {
    if (options.skip?.has(seed)) continue;
    seeds++;
    const r = await runSchedule({ seed });
    steps += r.steps;
    agentsMade += r.stats.agentsMade;
    agentsNeeded += r.stats.agentsNeeded;
    if (r.violation) {
      failures.push(r);
      byInvariant[r.violation.invariant] = (byInvariant[r.violation.invariant] ?? 0) + 1;
      options.onFailure?.(r);
    }
  }
  return { seeds, failures, byInvariant, steps, agentsMade, agentsNeeded, ms: performance.now() - started };
}

export interface KnownFailure {
  readonly seed: number;
  readonly invariant: Violation['invariant'];
  /** What breaks and which fix it waits for. */
  readonly note: string;
  /** The shrunk choice list, when shrunk (otherwise the seed replays the whole schedule). */
  readonly choices?: number[];
}

export const KNOWN_FAILURES_FILE = fileURLToPath(new URL('./known-failures.json', import.meta.url));

export function knownFailures(): KnownFailure[] {
  return JSON.parse(readFileSync(KNOWN_FAILURES_FILE, 'utf8')) as KnownFailure[];
}
