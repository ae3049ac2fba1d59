import { describe, expect, it } from 'vitest';
import type { JobEvent } from '../../functions/core/job-event.js';
import type { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { VirtualClock } from '../../tools/simulate/clock.js';
import { POLICIES } from '../../tools/simulate/policies.js';
import { formatTable, renderSvg } from '../../tools/simulate/report.js';
import {
  DEFAULT_OPTIONS,
  percentile,
  runPolicy,
  type SimulationOptions,
  simulate,
} from '../../tools/simulate/simulate.js';
import { generateTrace, parseTrace, type TraceJob } from '../../tools/simulate/trace.js';

/** Zero latencies and exits so every figure can be computed by hand. */
const exact: Partial<SimulationOptions> = {
  podStartupSeconds: 10,
  idleTimeoutSeconds: 30,
  agentExitSeconds: 0,
  webhookLatencySeconds: 0,
  awsLatencyMs: 0,
  kubeLatencyMs: 0,
  scheduleSeconds: 60,
  budgetSeconds: 50,
  pollSeconds: 5,
  minAgents: 0,
  maxAgents: 10,
};

const job = (id: string, at: number, duration: number, extra: Partial<TraceJob> = {}): TraceJob => ({
  id,
  at,
  queue: 'default',
  duration,
  ...extra,
});

describe('virtual clock', () => {
  it('runs async code in virtual time, in timestamp order, without sleeping', async () => {
    const clock = new VirtualClock();
    const seen: string[] = [];
    const worker = async (name: string, ms: number) => {
      await clock.sleep(ms);
      seen.push(`${name}@${clock.now}`);
      await clock.sleep(ms);
      seen.push(`${name}@${clock.now}`);
    };
    void worker('slow', 60_000);
    void worker('fast', 25_000);
    const started = Date.now();
    await clock.run();
    expect(seen).toEqual(['fast@25000', 'fast@50000', 'slow@60000', 'slow@120000']);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('simulator on a hand-computable trace', () => {
  // a at 2 s, b at 100 s, c at 230 s, 60 s each; pods take 10 s to start.
  const trace = [job('a', 2, 60), job('b', 100, 60), job('c', 230, 60)];

  it('ours (the real scaler): waits, agent-seconds, Jobs', async () => {
    const r = await runPolicy('ours', trace, { ...DEFAULT_OPTIONS, ...exact });
    // Invocations at 0, 60, 120, 180, 240 s, each ticking until 45 s into its 50 s budget.
    // a: its event wakes the long poll of invocation 0 at 2 s -> Job at 2 -> agent at 12: wait 10.
    // b: arrives at 100, during invocation 60's long poll -> Job at 100 -> agent at 110: wait 10.
    // c: arrives at 230, after invocation 180 stopped (225) -> Job at 240 -> agent at 250: wait 20.
    expect(r.waits).toEqual([10, 10, 20]);
    expect(r.wait).toMatchObject({ p50: 10, p95: 20, p99: 20, max: 20 });
    // Each agent: 10 s start-up + 60 s job.
    expect(r.agentSeconds).toEqual({ provisioned: 210, used: 180, idle: 30, idleFraction: 0.1429 });
    expect(r.kubernetes.jobs).toBe(3);
    expect(r.kubernetes.calls.create).toBe(3);
    expect(r.maxInFlight).toBe(1);
    expect(r.neverStarted).toBe(0);
    expect(r.errors).toEqual([]);
    expect(r.aws.lambdaInvocations).toBeGreaterThanOrEqual(5);
    // The webhook sent one message per transition (3 jobs x scheduled, started, finished).
    expect(r.aws.calls['sqs.SendMessage']).toBe(9);
  });

  it('job-per-ci-job: a Job at each arrival, waits = pod start-up', async () => {
    const r = await runPolicy('job-per-ci-job', trace, { ...DEFAULT_OPTIONS, ...exact });
    expect(r.waits).toEqual([10, 10, 10]);
    expect(r.agentSeconds).toEqual({ provisioned: 210, used: 180, idle: 30, idleFraction: 0.1429 });
    expect(r.kubernetes.jobs).toBe(3);
  });

  it('long-lived-job: parallelism follows the period, pods are replaced, surplus killed', async () => {
    const r = await runPolicy('long-lived-job', trace, { ...DEFAULT_OPTIONS, ...exact });
    // 60: parallelism 1 -> pod1 ready 70 takes a (wait 68). 120: 2 -> pod2 ready 130 takes b (30).
    // 130: a done, pod1 replaced by pod3 (ready 140), which idles out at 170 and is replaced by
    // pod4 (ready 180). 180: parallelism 1 -> pod4 (most recently ready) killed.
    // 190: b done, pod2 replaced by pod5, ready 200, still idle when c arrives at 230 (wait 0).
    // 290: c done, pod5 replaced by pod6; 300: parallelism 0 kills it.
    expect(r.waits).toEqual([0, 30, 68]);
    // pod1 70 + pod2 70 + pod3 40 + pod4 10 + pod5 100 + pod6 10.
    expect(r.agentSeconds.provisioned).toBe(300);
    expect(r.agentSeconds.used).toBe(180);
    expect(r.agentPods).toBe(6);
    expect(r.kubernetes.jobs).toBe(1);
  });

  it('oracle: wait 0 and provisioned = used', async () => {
    const report = await simulate(trace, { ...exact, policies: ['oracle'] });
    const r = report.results[0]!;
    expect(r.waits).toEqual([0, 0, 0]);
    expect(r.agentSeconds).toEqual({ provisioned: 180, used: 180, idle: 0, idleFraction: 0 });
    expect(r.maxInFlight).toBe(1);
  });

  it('the warm floor: MIN 1 agent takes a job at once, and is topped up again', async () => {
    const r = await runPolicy('ours', [job('a', 30, 60)], {
      ...DEFAULT_OPTIONS,
      ...exact,
      minAgents: 1,
      idleTimeoutSeconds: 600,
    });
    // The floor agent is created at 0 and ready at 10; a arrives at 30 and starts at once.
    expect(r.waits).toEqual([0]);
  });

  it('a job cancelled before any agent took it has no wait and is counted', async () => {
    const r = await runPolicy('ours', [job('a', 2, 60, { cancelAt: 5 }), job('b', 100, 60)], {
      ...DEFAULT_OPTIONS,
      ...exact,
    });
    expect(r.cancelledBeforeStart).toBe(1);
    expect(r.started).toBe(1);
    expect(r.neverStarted).toBe(0);
  });
});

describe('simulator invariants', () => {
  const policies = POLICIES;

  it('no policy beats the oracle on any wait percentile, nor on agent-seconds', async () => {
    for (const generator of ['steady', 'bursty'] as const) {
      const trace = generateTrace(generator, { jobs: 120, seed: 7, cancelFraction: 0 });
      const report = await simulate(trace, { policies, maxAgents: 15 });
      const oracle = report.results.find((r) => r.policy === 'oracle')!;
      for (const r of report.results) {
        for (const p of ['p50', 'p95', 'p99', 'max'] as const) expect(r.wait[p]).toBeGreaterThanOrEqual(oracle.wait[p]);
        expect(r.waits.every((w) => w >= 0)).toBe(true);
        expect(r.agentSeconds.provisioned).toBeGreaterThanOrEqual(oracle.agentSeconds.provisioned - 1e-6);
        expect(r.neverStarted).toBe(0);
      }
    }
  });

  it('ours never has more than MAX_AGENTS agents in flight per queue, and still serves every job', async () => {
    const bursty = generateTrace('bursty', { jobs: 150, seed: 3 });
    const other = generateTrace('steady', { jobs: 60, seed: 4, queue: 'linux-large' });
    const trace = [...bursty, ...other].sort((a, b) => a.at - b.at);
    const r = await runPolicy('ours', trace, { ...DEFAULT_OPTIONS, maxAgents: 6 });
    expect(r.maxInFlightByQueue.default).toBe(6); // reached, never exceeded
    expect(r.maxInFlightByQueue['linux-large']).toBeLessThanOrEqual(6);
    expect(r.neverStarted).toBe(0);
    expect(r.errors).toEqual([]);
  });

  it('duplicate deliveries provision no extra agent', async () => {
    const clean = generateTrace('steady', {
      jobs: 80,
      seed: 11,
      cancelFraction: 0,
      duplicateFraction: 0,
      reorderFraction: 0,
    });
    const noisy = clean.map((j) => ({ ...j, duplicates: 3 }));
    const options = { ...DEFAULT_OPTIONS, maxAgents: 30 };
    const a = await runPolicy('ours', clean, options);
    const b = await runPolicy('ours', noisy, options);
    expect(b.aws.calls['sqs.SendMessage']).toBe(4 * a.aws.calls['sqs.SendMessage']!);
    expect(b.agentPods).toBe(a.agentPods);
    expect(b.agentPods).toBe(80);
  });

  it('out-of-order deliveries (scheduled after finished) provision nothing beyond the warm floor', async () => {
    // Jobs spaced out so the one warm agent takes each at once.
    const trace = [job('a', 60, 30), job('b', 200, 30), job('c', 340, 30)];
    const options = { ...DEFAULT_OPTIONS, minAgents: 1, idleTimeoutSeconds: 600 };
    const inOrder = await runPolicy('ours', trace, options);
    let ledger: InMemoryLedgerStore | undefined;
    const reordered = await runPolicy('ours', trace, options, {
      onStart: ({ world, clock, run }) => {
        // Hold every `scheduled` webhook back until just after its job's `finished` arrived.
        const send = world.sink!;
        const held = new Map<string, JobEvent>();
        world.sink = (event) => {
          if (event.kind === 'scheduled') {
            held.set(event.jobId, event);
            return;
          }
          send(event);
          if (event.kind === 'finished') clock.after(1000, () => send(held.get(event.jobId)!));
        };
        ledger = run.ledger;
      },
    });
    expect(inOrder.waits).toEqual([0, 0, 0]);
    expect(reordered.waits).toEqual([0, 0, 0]);
    expect(reordered.agentPods).toBe(inOrder.agentPods);
    expect(reordered.maxInFlight).toBe(1);
    expect(ledger!.all().map((j) => j.state)).toEqual(['finished', 'finished', 'finished']);
  });

  it('is deterministic: the same trace and seed give the same figures', async () => {
    const trace = generateTrace('bursty', { jobs: 80, seed: 5 });
    const a = await simulate(trace, { maxAgents: 10 });
    const b = await simulate(trace, { maxAgents: 10 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});

describe('traces and report', () => {
  it('parses the JSON-lines format and names a bad line', () => {
    const text = [
      '# comment',
      '{"at": 0, "queue": "default", "duration": 60}',
      '',
      '{"at": 5, "duration": 30, "cancelAt": 10, "duplicates": 2, "reorder": true, "id": "x"}',
    ].join('\n');
    expect(parseTrace(text)).toEqual([
      { id: 'job-2', at: 0, queue: 'default', duration: 60 },
      { id: 'x', at: 5, queue: 'default', duration: 30, cancelAt: 10, duplicates: 2, reorder: true },
    ]);
    expect(() => parseTrace('{"at": 0, "duration": 1}\n{"at": -1, "duration": 1}')).toThrow(/line 2: at/);
    expect(() => parseTrace('{"at": 0, "duration": 1, "typo": 1}')).toThrow(/line 1/);
  });

  it('generators are seeded and give the asked number of jobs', () => {
    for (const g of ['steady', 'bursty', 'diurnal'] as const) {
      const a = generateTrace(g, { jobs: 50, seed: 9 });
      expect(a).toHaveLength(50);
      expect(generateTrace(g, { jobs: 50, seed: 9 })).toEqual(a);
      expect(generateTrace(g, { jobs: 50, seed: 10 })).not.toEqual(a);
      expect(a.every((j, i) => i === 0 || a[i - 1]!.at <= j.at)).toBe(true);
    }
  });

  it('nearest-rank percentiles', () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(sorted, 50)).toBe(5);
    expect(percentile(sorted, 95)).toBe(10);
    expect(percentile([], 50)).toBe(0);
  });

  it('renders a table and a well-formed SVG with every policy', async () => {
    const report = await simulate(generateTrace('steady', { jobs: 30, seed: 2 }), { maxAgents: 5 });
    const table = formatTable(report);
    for (const p of ['ours', 'long-lived-job', 'job-per-ci-job', 'oracle']) expect(table).toContain(p);
    const svg = renderSvg(report);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    expect(svg.match(/<path /g)!.length).toBeGreaterThanOrEqual(4 * 3 + 4);
  });
});

describe('npm run simulate (CLI)', () => {
  it('reads a trace file, prints JSON and writes the SVG', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'simulate-'));
    try {
      const tracePath = join(dir, 'trace.jsonl');
      writeFileSync(
        tracePath,
        '{"at": 2, "queue": "default", "duration": 60}\n{"at": 100, "queue": "default", "duration": 60, "duplicates": 2}\n',
      );
      const out = join(dir, 'report.svg');
      const stdout = execFileSync(
        process.execPath,
        [
          '--import',
          'tsx',
          'tools/simulate/cli.ts',
          '--trace',
          tracePath,
          '--json',
          '--policies',
          'ours,oracle',
          '--pod-startup-seconds',
          '10',
          '--out',
          out,
        ],
        { encoding: 'utf8' },
      );
      const summary = JSON.parse(stdout) as { results: { policy: string; started: number; wait: { max: number } }[] };
      expect(summary.results.map((r) => r.policy)).toEqual(['ours', 'oracle']);
      expect(summary.results[0]!.started).toBe(2);
      expect(summary.results[0]!.wait.max).toBeGreaterThanOrEqual(10);
      expect(readFileSync(out, 'utf8')).toContain('</svg>');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a bad option with a message naming it', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'tools/simulate/cli.ts', '--generate', 'weekly'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--generate must be one of steady, bursty, diurnal');
  });
});

describe('agents per CI job with quick agents and late finished webhooks (issue 12: waste)', () => {
  // Bursts of 12 short CI jobs every 90 s; every webhook of every job is delayed 0-30 s, so a
  // `finished` often arrives long after its agent has exited.
  const trace: TraceJob[] = [];
  for (let burst = 0; burst < 10; burst++)
    for (let i = 0; i < 12; i++)
      trace.push(job(`b${burst}-${i}`, burst * 90 + ((i * 7) % 30) / 10, 3 + ((i * 5) % 8), { reorder: true }));

  it.each([8, 12, 20])('makes at most 1.05 agents per CI job (MAX_AGENTS %i), every job started', async (max) => {
    const r = await runPolicy('ours', trace, { ...DEFAULT_OPTIONS, maxAgents: max });
    expect(r.started).toBe(trace.length);
    expect(r.maxInFlight).toBeLessThanOrEqual(max);
    expect(r.agentPods / trace.length).toBeLessThanOrEqual(1.05);
  });
});
