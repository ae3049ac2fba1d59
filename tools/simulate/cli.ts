/**
 * `npm run simulate -- [options]`: what-if simulation of the scaler (and the policies it replaces)
 * on a trace of CI jobs, on a virtual clock. Prints a table (or JSON with --json) and writes an
 * SVG report with --out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { WARM_POOL_DEFAULTS } from '../../functions/core/warm-pool.js';
import { type ArrivalModel, arrivalModel } from './bound.js';
import { VirtualClock } from './clock.js';
import { DEFAULT_HISTORY_DAYS, generatorHistory, type HistoryDay, scoredReplay } from './history.js';
import { POLICIES, type PolicyName } from './policies.js';
import { readHistory } from './replay.js';
import { formatTable, renderSvg, renderTradeoffSvg, reportBounds, summaryJson, targetsLine } from './report.js';
import { DEFAULT_OPTIONS, type SimulationOptions, simulate } from './simulate.js';
import { DEFAULT_SWEEP_MAX, DEFAULT_SWEEP_MIN, formatSweep, sweep } from './sweep.js';
import { formatTrace, GENERATORS, type GeneratorName, generateTrace, readTrace, type TraceJob } from './trace.js';

const USAGE = `Usage: npm run simulate -- [options]

Trace (one of):
  --trace FILE             JSON lines, one CI job per line:
                           {"at":s,"queue":"default","duration":s,"cancelAt"?:s,"duplicates"?:n,"reorder"?:true}
  --from FILE              replay real job history: a provider's REST API output (GitHub "list jobs
                           for a workflow run" pages, Buildkite builds with their jobs, GitLab
                           project jobs); see docs/simulator.md for the gh api / curl commands
  --score-day YYYY-MM-DD   with --from: score the jobs of that UTC day only; ours-warm learns
                           from the file's days before it (at most --warm-days), never from it or later
  --generate NAME          built-in trace: ${GENERATORS.join(' | ')} (default steady)
  --jobs N                 jobs to generate (default 200)
  --seed N                 seed of the generator and of webhook jitter (default 1)
  --cancel-fraction F      generated jobs cancelled (default 0.03)
  --duplicate-fraction F   generated jobs whose webhooks are delivered twice (default 0.05)
  --reorder-fraction F     generated jobs whose webhooks are delayed 0-30 s, out of order (default 0.05)
  --save-trace FILE        write the trace used as JSON lines

Settings:
  --min N                  MIN_AGENTS per queue (default ${DEFAULT_OPTIONS.minAgents})
  --max N                  MAX_AGENTS per queue (default ${DEFAULT_OPTIONS.maxAgents})
  --pod-startup-seconds S  pod created -> agent ready (default ${DEFAULT_OPTIONS.podStartupSeconds})
  --idle-timeout-seconds S agent with no job exits after (default ${DEFAULT_OPTIONS.idleTimeoutSeconds})
  --agent-exit-seconds S   CI job finished -> agent pod terminated in the Job status (default ${DEFAULT_OPTIONS.agentExitSeconds})
  --schedule-seconds S     scaler schedule period (default ${DEFAULT_OPTIONS.scheduleSeconds})
  --budget-seconds S       SCALER_BUDGET_SECONDS (default ${DEFAULT_OPTIONS.budgetSeconds})
  --poll-seconds S         SCALER_POLL_SECONDS (default ${DEFAULT_OPTIONS.pollSeconds})
  --webhook-latency-seconds S  CI event -> message in the queue (default ${DEFAULT_OPTIONS.webhookLatencySeconds})
  --warm-quantile F        ours-warm: share of arrivals the pool aims to serve at once (default 0.75)
  --warm-window-minutes M  ours-warm: how far back arrivals count (default 10)
  --warm-days N            ours-warm: earlier days its arrival model learns from: of the generator
                           (seeds seed+1..seed+N, never the scored seed), or with --score-day the
                           replayed days before the scored one (default ${DEFAULT_HISTORY_DAYS}; 0: none,
                           the pool follows recent arrivals only)
  --warm-no-scale-down     ours-warm: do not stop surplus agents; they leave on the idle timeout
                           (default: the scaler stops decision.scaleDown of them: deletes the
                           newest Running pods; an idle agent exits, a busy one after its job)
  --github-aws-pool-size N github-aws-runners pool_config size, topped up every 5 min (default 0: off)
  --verbose                print the scaler's decisions (ours) with the virtual time
  --policies LIST          comma-separated: ${POLICIES.join(',')} (default all)

Sweep (instead of the comparison):
  --sweep                  run ours on a MIN x MAX grid, warm pool off and adaptive (quantile 0.5
                           and 0.75), and print the
                           cheapest setting (agent-hours) whose p95 wait meets --target-p95
  --target-p95 S           the p95 wait to meet (default: 2 x --pod-startup-seconds)
  --sweep-min LIST         MIN_AGENTS values (default ${DEFAULT_SWEEP_MIN.join(',')})
  --sweep-max LIST         MAX_AGENTS values (default ${DEFAULT_SWEEP_MAX.join(',')})

Output:
  --out FILE.svg           write the SVG report (time series and wait-time CDF)
  --json                   print the JSON summary instead of the table
  -h, --help
`;

function num(name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got "${value}"`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      trace: { type: 'string' },
      from: { type: 'string' },
      'score-day': { type: 'string' },
      sweep: { type: 'boolean', default: false },
      'target-p95': { type: 'string' },
      'sweep-min': { type: 'string' },
      'sweep-max': { type: 'string' },
      'github-aws-pool-size': { type: 'string' },
      'warm-quantile': { type: 'string' },
      'warm-window-minutes': { type: 'string' },
      'warm-days': { type: 'string' },
      'warm-no-scale-down': { type: 'boolean' },
      generate: { type: 'string' },
      jobs: { type: 'string' },
      seed: { type: 'string' },
      'save-trace': { type: 'string' },
      'cancel-fraction': { type: 'string' },
      'duplicate-fraction': { type: 'string' },
      'reorder-fraction': { type: 'string' },
      min: { type: 'string' },
      max: { type: 'string' },
      'pod-startup-seconds': { type: 'string' },
      'idle-timeout-seconds': { type: 'string' },
      'agent-exit-seconds': { type: 'string' },
      'schedule-seconds': { type: 'string' },
      'budget-seconds': { type: 'string' },
      'poll-seconds': { type: 'string' },
      'webhook-latency-seconds': { type: 'string' },
      policies: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if ([values.trace, values.generate, values.from].filter(Boolean).length > 1)
    throw new Error('use one of --trace, --from and --generate');
  if (values['score-day'] !== undefined && !values.from)
    throw new Error('--score-day needs --from (a replayed history)');
  const seed = Math.floor(num('seed', values.seed, 1));
  const warmDays = Math.floor(num('warm-days', values['warm-days'], DEFAULT_HISTORY_DAYS));
  let trace: TraceJob[];
  let source = '';
  /** The generator's arrival model (bound.ts), for the bound beside the trace. */
  let model: ArrivalModel | undefined;
  /** ours-warm's past days (generated traces only). */
  let warmHistory: HistoryDay[] = [];
  if (values.trace) {
    trace = readTrace(values.trace);
  } else if (values.from) {
    const replay = readHistory(values.from);
    const leftOut = `${replay.skipped} that needed no agent or did not finish left out`;
    if (values['score-day'] !== undefined) {
      const scored = scoredReplay(replay, values['score-day'], new VirtualClock().epochMs, warmDays);
      trace = scored.trace;
      warmHistory = scored.history;
      const learnedJobs = scored.history.reduce((n, d) => n + d.jobs.length, 0);
      source = `replayed ${replay.provider} history scored on ${values['score-day']}: ${trace.length} jobs, t = 0 at its midnight UTC; ours-warm learned from the ${scored.history.length} days before it (${learnedJobs} jobs) (${leftOut})`;
    } else {
      trace = replay.jobs;
      source = `replayed ${replay.provider} history: ${trace.length} jobs from ${new Date(replay.startMs).toISOString()} (${leftOut})`;
    }
  } else {
    const name = (values.generate ?? 'steady') as GeneratorName;
    if (!GENERATORS.includes(name))
      throw new Error(`--generate must be one of ${GENERATORS.join(', ')}, got "${name}"`);
    const fraction = (flag: string, value: string | undefined, fallback: number) => {
      const f = num(flag, value, fallback);
      if (f > 1) throw new Error(`--${flag} must be a number from 0 to 1, got "${value}"`);
      return f;
    };
    model = arrivalModel(name, Math.floor(num('jobs', values.jobs, 200, 1)));
    warmHistory = generatorHistory(
      name,
      Math.floor(num('jobs', values.jobs, 200, 1)),
      seed,
      new VirtualClock().epochMs,
      warmDays,
    );
    trace = generateTrace(name, {
      jobs: Math.floor(num('jobs', values.jobs, 200, 1)),
      seed,
      cancelFraction: fraction('cancel-fraction', values['cancel-fraction'], 0.03),
      duplicateFraction: fraction('duplicate-fraction', values['duplicate-fraction'], 0.05),
      reorderFraction: fraction('reorder-fraction', values['reorder-fraction'], 0.05),
    });
  }
  if (values['save-trace']) writeFileSync(values['save-trace'], formatTrace(trace));

  const policies = (values.policies ?? POLICIES.join(','))
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of policies)
    if (!POLICIES.includes(p as PolicyName)) throw new Error(`unknown policy "${p}" (known: ${POLICIES.join(', ')})`);
  const minAgents = Math.floor(num('min', values.min, DEFAULT_OPTIONS.minAgents));
  const maxAgents = Math.floor(num('max', values.max, Math.max(DEFAULT_OPTIONS.maxAgents, minAgents), 1));
  if (maxAgents < minAgents) throw new Error(`--max must be >= --min, got ${maxAgents} < ${minAgents}`);
  const overrides: Partial<SimulationOptions> = {
    policies: policies as PolicyName[],
    seed,
    minAgents,
    maxAgents,
    podStartupSeconds: num('pod-startup-seconds', values['pod-startup-seconds'], DEFAULT_OPTIONS.podStartupSeconds),
    idleTimeoutSeconds: num('idle-timeout-seconds', values['idle-timeout-seconds'], DEFAULT_OPTIONS.idleTimeoutSeconds),
    agentExitSeconds: num('agent-exit-seconds', values['agent-exit-seconds'], DEFAULT_OPTIONS.agentExitSeconds),
    scheduleSeconds: num('schedule-seconds', values['schedule-seconds'], DEFAULT_OPTIONS.scheduleSeconds, 1),
    budgetSeconds: num('budget-seconds', values['budget-seconds'], DEFAULT_OPTIONS.budgetSeconds, 1),
    pollSeconds: num('poll-seconds', values['poll-seconds'], DEFAULT_OPTIONS.pollSeconds),
    webhookLatencySeconds: num(
      'webhook-latency-seconds',
      values['webhook-latency-seconds'],
      DEFAULT_OPTIONS.webhookLatencySeconds,
    ),
    warmHistory,
    ...(values['warm-no-scale-down'] ? { warmScaleDown: false } : {}),
    githubAwsPoolSize: Math.floor(num('github-aws-pool-size', values['github-aws-pool-size'], 0)),
    warmPool: {
      quantile: num('warm-quantile', values['warm-quantile'], WARM_POOL_DEFAULTS.quantile),
      windowMs:
        num('warm-window-minutes', values['warm-window-minutes'], WARM_POOL_DEFAULTS.windowMs / 60_000, 1) * 60_000,
    },
  };
  if ((overrides.warmPool?.quantile ?? 0) > 1) throw new Error('--warm-quantile must be a number from 0 to 1');
  if (values.verbose) {
    // One line per scaler log entry, with `t` = virtual seconds since the start.
    const line = (level: string) => (message: string, extra?: Record<string, unknown>) => {
      process.stderr.write(`${level} ${message} ${JSON.stringify(extra ?? {})}\n`);
    };
    Object.assign(overrides, {
      scalerLog: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    });
  }
  if (source && !values.json) process.stdout.write(`${source}\n`);
  if (values.sweep) {
    const list = (flag: string, value: string | undefined, fallback: readonly number[]) =>
      value === undefined ? fallback : value.split(',').map((v) => Math.floor(num(flag, v.trim(), 0)));
    const options = { ...DEFAULT_OPTIONS, ...overrides };
    const targetP95 = num('target-p95', values['target-p95'], 2 * options.podStartupSeconds);
    const result = await sweep(trace, options, {
      min: list('sweep-min', values['sweep-min'], DEFAULT_SWEEP_MIN),
      max: list('sweep-max', values['sweep-max'], DEFAULT_SWEEP_MAX),
      targetP95,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else process.stdout.write(formatSweep(result));
    if (values.out) {
      mkdirSync(dirname(values.out), { recursive: true });
      writeFileSync(
        values.out,
        renderTradeoffSvg(
          result.points,
          'Sweep: wait versus idle, one point per MIN/MAX setting (ours: warm pool off; ours-warm: adaptive)',
          result.best
            ? `${trace.length} CI jobs; cheapest with p95 <= ${targetP95} s: MIN ${result.best.minAgents} MAX ${result.best.maxAgents} warm pool ${result.best.warmPool ? `adaptive q${result.best.warmQuantile}` : 'off'}, ${result.best.agentHours} agent-h`
            : `${trace.length} CI jobs; no setting meets p95 <= ${targetP95} s`,
        ),
      );
      if (!values.json) process.stdout.write(`plot: ${values.out}\n`);
    }
    return 0;
  }
  const report = await simulate(trace, overrides);
  if (values.json) {
    const bound = model ? reportBounds(model, report) : undefined;
    process.stdout.write(
      `${JSON.stringify({ ...(summaryJson(report) as object), ...(bound ? { bound } : {}) }, null, 2)}\n`,
    );
  } else process.stdout.write(`${formatTable(report)}${targetsLine(report)}`);
  if (values.out) {
    mkdirSync(dirname(values.out), { recursive: true });
    writeFileSync(values.out, renderSvg(report));
    if (!values.json) process.stdout.write(`report: ${values.out}\n`);
  }
  const errors = report.results.flatMap((r) => r.errors.map((e) => `${r.policy}: ${e}`));
  if (errors.length > 0) process.stderr.write(`scaler errors during the simulation:\n${errors.join('\n')}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`simulate: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    process.exit(2);
  },
);
