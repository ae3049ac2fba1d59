/**
 * `npm run simulate -- [options]`: what-if simulation of the scaler (and the policies it replaces)
 * on a trace of CI jobs, on a virtual clock. Prints a table (or JSON with --json) and writes an
 * SVG report with --out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { POLICIES, type PolicyName } from './policies.js';
import { formatTable, renderSvg, summaryJson } from './report.js';
import { DEFAULT_OPTIONS, type SimulationOptions, simulate } from './simulate.js';
import { formatTrace, GENERATORS, type GeneratorName, generateTrace, readTrace, type TraceJob } from './trace.js';

const USAGE = `Usage: npm run simulate -- [options]

Trace (one of):
  --trace FILE             JSON lines, one CI job per line:
                           {"at":s,"queue":"default","duration":s,"cancelAt"?:s,"duplicates"?:n,"reorder"?:true}
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
  --verbose                print the scaler's decisions (ours) with the virtual time
  --policies LIST          comma-separated: ${POLICIES.join(',')} (default all)

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
  if (values.trace && values.generate) throw new Error('use either --trace or --generate, not both');
  const seed = Math.floor(num('seed', values.seed, 1));
  let trace: TraceJob[];
  if (values.trace) {
    trace = readTrace(values.trace);
  } else {
    const name = (values.generate ?? 'steady') as GeneratorName;
    if (!GENERATORS.includes(name))
      throw new Error(`--generate must be one of ${GENERATORS.join(', ')}, got "${name}"`);
    const fraction = (flag: string, value: string | undefined, fallback: number) => {
      const f = num(flag, value, fallback);
      if (f > 1) throw new Error(`--${flag} must be a number from 0 to 1, got "${value}"`);
      return f;
    };
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
  };
  if (values.verbose) {
    // One line per scaler log entry, with `t` = virtual seconds since the start.
    const line = (level: string) => (message: string, extra?: Record<string, unknown>) => {
      process.stderr.write(`${level} ${message} ${JSON.stringify(extra ?? {})}\n`);
    };
    Object.assign(overrides, {
      scalerLog: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    });
  }
  const report = await simulate(trace, overrides);
  if (values.json) process.stdout.write(`${JSON.stringify(summaryJson(report), null, 2)}\n`);
  else process.stdout.write(formatTable(report));
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
