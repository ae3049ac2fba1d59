import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DAY_MS } from '../../functions/core/arrival-model.js';
import { VirtualClock } from '../../tools/simulate/clock.js';
import { scoredReplay } from '../../tools/simulate/history.js';
import { parseHistory } from '../../tools/simulate/replay.js';
import { simulate } from '../../tools/simulate/simulate.js';

/**
 * GitHub "list jobs for a workflow run" pages (`gh api --paginate --slurp`): one workflow run a
 * day, November `days`, at 10:00 UTC, fanning out to `jobsPerRun` jobs (one a second) on a
 * self-hosted `linux` runner.
 */
function dailyRuns(days: readonly number[], jobsPerRun = 8): string {
  let id = 1000;
  return JSON.stringify(
    days.map((d) => {
      const jobs = Array.from({ length: jobsPerRun }, (_, k) => {
        const created = Date.UTC(2026, 10, d, 10, 0, k);
        return {
          id: id++,
          run_id: d,
          name: `test (${k})`,
          status: 'completed',
          conclusion: 'success',
          created_at: new Date(created).toISOString(),
          started_at: new Date(created + 20_000).toISOString(),
          completed_at: new Date(created + 200_000).toISOString(),
          labels: ['self-hosted', 'linux'],
          runner_name: `runner-${id}`,
          runner_group_name: 'Default',
        };
      });
      return { total_count: jobs.length, jobs };
    }),
  );
}

const epochMs = new VirtualClock().epochMs;
const TEN_AM = 10 * 3600;

describe('a replayed history scored on one day (--score-day)', () => {
  const replay = parseHistory(dailyRuns([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]));

  it("scores that day's jobs, timed from its midnight; learns the days before it, never that day or a later one", () => {
    const s = scoredReplay(replay, '2026-11-19', epochMs);
    expect(s.dayMs).toBe(Date.UTC(2026, 10, 19));
    expect(s.trace).toHaveLength(8);
    expect(s.trace.map((j) => j.at)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((k) => TEN_AM + k));
    expect(s.trace.map((j) => j.duration)).toEqual(Array(8).fill(180));
    // November 10..18: nine days, the day before first, each at its place before the clock's epoch.
    expect(s.history.map((d) => d.startMs)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => epochMs - k * DAY_MS));
    for (const day of s.history) expect(day.jobs.map((j) => j.at)).toEqual(s.trace.map((j) => j.at));
    const learnedIds = new Set(s.history.flatMap((d) => d.jobs.map((j) => j.id)));
    expect(learnedIds.size).toBe(72);
    for (const j of s.trace) expect(learnedIds.has(j.id)).toBe(false);
    // --warm-days: at most that many days before it.
    expect(scoredReplay(replay, '2026-11-19', epochMs, 3).history).toHaveLength(3);
    expect(scoredReplay(replay, '2026-11-19', epochMs, 0).history).toEqual([]);
  });

  it('a day the file has no job on, or a date not written YYYY-MM-DD, is refused saying why', () => {
    expect(() => scoredReplay(replay, '2026-11-25', epochMs)).toThrow(
      '--score-day 2026-11-25: no job of the file waits on that day (its jobs wait from 2026-11-10 to 2026-11-20)',
    );
    expect(() => scoredReplay(replay, '19/11/2026', epochMs)).toThrow(
      '--score-day must be a UTC date YYYY-MM-DD, got "19/11/2026"',
    );
    // The file's first day is the first one learned: no day before it is made up.
    expect(scoredReplay(replay, '2026-11-10', epochMs).history).toEqual([]);
  });

  it('a history of weeks of a large organisation (150,000 jobs) is read and split', () => {
    const days = Array.from({ length: 30 }, (_, i) => i + 1);
    const big = parseHistory(dailyRuns(days, 5_000));
    expect(big.jobs).toHaveLength(150_000);
    const s = scoredReplay(big, '2026-11-30', epochMs);
    expect(s.trace).toHaveLength(5_000);
    expect(s.history).toHaveLength(14);
  }, 60_000);

  it("ours-warm learns the daily 10:00 run from the days before: that day's jobs find agents ready", async () => {
    const run = async (days?: number) => {
      const s = scoredReplay(replay, '2026-11-19', epochMs, days);
      const report = await simulate(s.trace, { policies: ['ours-warm'], maxAgents: 30, warmHistory: s.history });
      return report.results[0]!;
    };
    const learned = await run();
    expect(learned.wait.p50).toBeLessThanOrEqual(3);
    expect(learned.wait.max).toBeLessThanOrEqual(3);
    expect(learned.neverStarted).toBe(0);
    expect(learned.interrupted).toBe(0);
    // One agent per job: once the run's jobs came, none is made for them again (was 16 pods).
    expect(learned.agentPods).toBe(8);
    // Without the past days the pool has no arrival to go by before the run: each job waits for a pod.
    const unlearned = await run(0);
    expect(unlearned.wait.p50).toBeGreaterThan(10);
  }, 60_000);

  it('npm run simulate: --score-day says what was scored and learned; without --from it is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'replay-history-'));
    try {
      const file = join(dir, 'jobs.json');
      writeFileSync(file, dailyRuns([17, 18, 19]));
      const cli = (args: string[]) =>
        execFileSync(process.execPath, ['--import', 'tsx', 'tools/simulate/cli.ts', ...args], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      const table = cli(['--from', file, '--score-day', '2026-11-19', '--policies', 'ours-warm']);
      expect(table).toContain(
        'replayed github history scored on 2026-11-19: 8 jobs, t = 0 at its midnight UTC; ours-warm learned from the 2 days before it (16 jobs)',
      );
      let stderr = '';
      try {
        cli(['--generate', 'bursty', '--score-day', '2026-11-19']);
      } catch (e) {
        stderr = String((e as { stderr: string }).stderr);
      }
      expect(stderr).toContain('--score-day needs --from (a replayed history)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
