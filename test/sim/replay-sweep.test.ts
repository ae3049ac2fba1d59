import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { POLICIES } from '../../tools/simulate/policies.js';
import { parseHistory, readHistory } from '../../tools/simulate/replay.js';
import { DEFAULT_OPTIONS } from '../../tools/simulate/simulate.js';
import { sweep } from '../../tools/simulate/sweep.js';

const fixture = (name: string) => `test/sim/fixtures/${name}`;

describe('replay of real job history (--from)', () => {
  it('GitHub "list jobs for a workflow run" pages: waits from created_at, runs started_at..completed_at', () => {
    const r = readHistory(fixture('github-run-jobs.json'));
    expect(r.provider).toBe('github');
    expect(r.skipped).toBe(1); // the skipped job needed no runner
    expect(r.startMs).toBe(Date.parse('2026-11-23T09:00:00Z'));
    expect(r.jobs[0]).toEqual({ id: 'github-29679449001', at: 0, queue: 'linux', duration: 180 });
    expect(r.jobs.find((j) => j.id === 'github-29679449004')).toMatchObject({ at: 1, duration: 375 });
    // Cancelled while queued (no runner_name): cancelled at its completed_at.
    expect(r.jobs.find((j) => j.id === 'github-29679449007')).toEqual({
      id: 'github-29679449007',
      at: 301,
      queue: 'linux',
      duration: 0,
      cancelAt: 320,
    });
    // The same pages one after another (gh api --paginate without --slurp) read the same.
    const pages = JSON.parse(readFileSync(fixture('github-run-jobs.json'), 'utf8')) as unknown[];
    expect(parseHistory(pages.map((p) => JSON.stringify(p)).join('\n')).jobs).toEqual(r.jobs);
  });

  it('Buildkite builds with their jobs: script jobs, waiting from runnable_at, queue from agent_query_rules', () => {
    const r = readHistory(fixture('buildkite-builds.json'));
    expect(r.provider).toBe('buildkite');
    expect(r.skipped).toBe(1); // the waiter step
    expect(r.jobs).toHaveLength(7);
    expect(r.jobs.find((j) => j.id.endsWith('0003'))).toMatchObject({ at: 1, queue: 'linux-large', duration: 283 });
    expect(r.jobs.find((j) => j.id.endsWith('0007'))).toMatchObject({ at: 600, duration: 0, cancelAt: 610 });
  });

  it('GitLab project jobs: waiting from started_at - queued_duration, queue from tag_list', () => {
    const r = readHistory(fixture('gitlab-project-jobs.json'));
    expect(r.provider).toBe('gitlab');
    expect(r.skipped).toBe(1); // the manual job
    expect(r.jobs.map((j) => j.queue)).toEqual(Array(6).fill('docker'));
    expect(r.jobs.find((j) => j.id === 'gitlab-8004')).toMatchObject({ duration: 160 });
    expect(r.jobs.find((j) => j.id === 'gitlab-8006')).toMatchObject({ duration: 0 });
  });

  it('names what it expected for an unknown file', () => {
    expect(() => parseHistory('[{"foo": 1}]')).toThrow(/GitHub "list jobs for a workflow run"/);
    expect(() => parseHistory('nope')).toThrow(/not JSON/);
  });
});

describe('--sweep', () => {
  it('recommends the cheapest MIN/MAX/warm-pool setting meeting the p95 target', async () => {
    const trace = readHistory(fixture('buildkite-builds.json')).jobs;
    const result = await sweep(trace, DEFAULT_OPTIONS, { min: [0, 1], max: [2, 5], targetP95: 60 });
    // 2 MIN x 2 MAX x (off, adaptive at quantile 0.5 and 0.75).
    expect(result.rows).toHaveLength(12);
    expect(result.points).toHaveLength(12);
    const meeting = result.rows.filter((r) => r.p95 <= 60);
    expect(result.best).toBeDefined();
    expect(meeting).toContainEqual(result.best);
    for (const r of meeting) expect(result.best?.agentHours).toBeLessThanOrEqual(r.agentHours);
    const none = await sweep(trace, DEFAULT_OPTIONS, { min: [0], max: [1], targetP95: 0 });
    expect(none.best).toBeUndefined();
  });

  it('npm run simulate -- --sweep prints the grid, the recommendation, and writes the plot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sweep-'));
    try {
      const out = join(dir, 'sweep.svg');
      const stdout = execFileSync(
        process.execPath,
        ['--import', 'tsx', 'tools/simulate/cli.ts', '--from', fixture('buildkite-builds.json'), '--sweep'].concat([
          '--sweep-min',
          '0',
          '--sweep-max',
          '3',
          '--target-p95',
          '60',
          '--out',
          out,
        ]),
        { encoding: 'utf8' },
      );
      expect(stdout).toContain('adaptive q0.75');
      expect(stdout).toMatch(/cheapest setting with p95 wait <= 60 s: MIN_AGENTS=0 MAX_AGENTS=3 WARM_POOL=/);
      const svg = readFileSync(out, 'utf8');
      expect(svg).toContain('</svg>');
      expect(svg.match(/<circle /g)?.length).toBe(2 * 3); // p50 and p95 of 3 settings
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm run simulate: every policy side by side', () => {
  it('with no policy flag prints every peer and ours (with and without the warm pool), in the JSON summary too', () => {
    const run = (args: string[]) =>
      execFileSync(process.execPath, ['--import', 'tsx', 'tools/simulate/cli.ts', ...args], { encoding: 'utf8' });
    const table = run(['--from', fixture('gitlab-project-jobs.json')]);
    for (const p of POLICIES) expect(table).toContain(`\n${p} `);
    expect(table).toContain('replayed gitlab history');
    expect(table).toMatch(/targets \(ours-warm\)/);
    const json = JSON.parse(run(['--generate', 'bursty', '--jobs', '40', '--json'])) as {
      results: { policy: string }[];
      targets: { policy: string };
    };
    expect(json.results.map((r) => r.policy)).toEqual([...POLICIES]);
    expect(json.targets.policy).toBe('ours-warm');
  });
});
