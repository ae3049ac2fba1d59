/**
 * `npm run demo`: a realistic burst of SIGNED webhooks — a Buildkite build, a GitHub Actions
 * workflow and a GitLab pipeline starting together, plus two redeliveries — POSTed over HTTP to
 * the local stack, then what happened: every CI job got an agent, how long each waited
 * (webhook POST -> its agent pod Running), and that MAX_AGENTS was respected (highest number of
 * agents in flight seen in the cluster).
 *
 *   npm run demo                       # against a running `npm start` (http://127.0.0.1:$PORT or 3000)
 *   npm run demo -- --standalone       # starts its own local stack for the run
 *   npm run demo -- --standalone --cluster kwok   # ... against the real control plane (npm run k8s:build)
 *   npm run demo -- --url http://127.0.0.1:4000 --buildkite 10 --github 8 --gitlab 6
 *
 * The agents are the embedded simulated cluster's pods, or kwok's (`--cluster kwok`); the local stack's simulated CI provider
 * gives each Running agent a waiting CI job and sends the started/finished webhooks (a real CI
 * provider does that for real agents). It signs with the running stack's secrets, read from its
 * run record (random per start unless BUILDKITE_WEBHOOK_SECRET, GITHUB_WEBHOOK_SECRET,
 * GITLAB_WEBHOOK_TOKEN set them); with --url to a stack it cannot find, with those variables.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { jobKey, PROVIDERS, type Provider } from '../../functions/core/job-event.js';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';
import { percentile } from '../simulate/simulate.js';
import {
  type CiJob,
  closeConnections,
  delivery,
  type LocalSecrets,
  localSigningSecrets,
  newCiJob,
  post,
} from './ci-webhooks.js';
import { startKwokCluster } from './kwok-cluster.js';
import { runningStack } from './run-files.js';
import type { CiJobRecord } from './simulated-ci.js';
import { type LocalStack, type LocalStackStatus, startLocalStack } from './stack.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

interface Sent {
  readonly job: CiJob;
  readonly postedAt: number;
  readonly status: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Seconds with one decimal; '-' when there is no sample (NaN). */
const seconds = (ms: number) => (Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(1)} s`);

async function fetchStatus(url: string): Promise<LocalStackStatus | undefined> {
  try {
    const res = await fetch(`${url}/local/status`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as LocalStackStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** Nearest-rank p-th percentile (p in 0..100) of ascending samples; NaN when there is none. */
const quantile = (sorted: readonly number[], p: number): number => (sorted.length === 0 ? NaN : percentile(sorted, p));

const REDELIVERIES = 2;

/** What the agent count says about the redeliveries: measured, not assumed. */
export function extraAgentsLine(agents: number, jobs: number, redeliveries: number, minAgents: number): string {
  const extra = agents - jobs;
  if (extra <= 0) return `the ${redeliveries} redeliveries added no agent`;
  return `${extra} more agent(s) than CI jobs (${redeliveries} redeliveries sent${minAgents > 0 ? `, MIN_AGENTS ${minAgents}` : ''})`;
}

export interface DemoResult {
  readonly ok: boolean;
  readonly jobs: number;
  readonly gotAgent: number;
  readonly finished: number;
  readonly waitP50Ms: number;
  readonly waitMaxMs: number;
  readonly maxInFlight: number;
  readonly maxAgents: number;
  readonly agentsRequested: number;
}

export async function runDemo(options: {
  url: string;
  counts: Readonly<Record<Provider, number>>;
  secrets: LocalSecrets;
  timeoutMs?: number;
  print?: (line: string) => void;
}): Promise<DemoResult> {
  const print = options.print ?? console.log;
  const before = await fetchStatus(options.url);
  if (!before)
    throw new Error(`no local stack answers at ${options.url} (start one with npm start, or use --standalone)`);
  if (!before.simulatedCi) {
    throw new Error(
      'the demo needs the simulated CI provider (embedded cluster or --cluster kwok): its CI jobs are made up, so real agents would never take them. Run `npm run demo -- --standalone`.',
    );
  }
  const [queue] = before.queues;
  if (!queue) throw new Error(`the local stack at ${options.url} serves no queue`);
  const requestedBefore = queue.agentsRequested;
  const jobsBefore = queue.jobsCreated;
  print(
    `Demo against ${options.url}: queue "${queue.queue}", MAX_AGENTS ${queue.maxAgents}, MIN_AGENTS ${queue.minAgents}; ${before.cluster === 'embedded' ? `simulated agents start after ${seconds(before.agentStartMs ?? 0)} and run ${seconds(before.agentRunMs ?? 0)}` : `agents are pods of a real cluster${before.agentRunMs === undefined ? '' : ` that run ${seconds(before.agentRunMs)}`}`}`,
  );

  // The burst: three pipelines start within about a second; each provider spreads its jobs a little.
  const plan: { at: number; job: CiJob }[] = [];
  for (const provider of PROVIDERS) {
    const { names, offsetMs } = DEMO[provider];
    for (let i = 0; i < options.counts[provider]; i++) {
      plan.push({
        at: offsetMs + i * 60,
        job: newCiJob(provider, queue.queue, names[i % names.length]),
      });
    }
  }
  plan.sort((a, b) => a.at - b.at);
  const total = plan.length;
  print(
    `Sending ${total} signed "scheduled" webhooks (Buildkite ${options.counts.buildkite}, GitHub ${options.counts.github}, GitLab ${options.counts.gitlab}) and ${REDELIVERIES} redeliveries...`,
  );

  const t0 = Date.now();
  const sent: Sent[] = [];
  await Promise.all(
    plan.map(async ({ at, job }) => {
      await sleep(Math.max(0, t0 + at - Date.now()));
      const postedAt = Date.now();
      const res = await post(options.url, delivery(job, 'scheduled', options.secrets));
      sent.push({ job, postedAt, status: res.status });
      if (res.status !== 202) print(`  ${job.provider} job ${job.jobId}: HTTP ${res.status} ${res.body}`);
    }),
  );
  // Providers redeliver: the same events again must not provision extra agents.
  for (const s of sent.slice(0, REDELIVERIES)) await post(options.url, delivery(s.job, 'scheduled', options.secrets));
  const accepted = sent.filter((s) => s.status === 202);
  if (accepted.length < total) {
    print(
      `${total - accepted.length} webhook(s) were not accepted; check that the demo and the stack use the same secrets.`,
    );
  }

  // Watch until every accepted CI job has finished on its agent.
  const ours = new Set(accepted.map((s) => jobKey(s.job)));
  const deadline = Date.now() + (options.timeoutMs ?? 180_000);
  let status = before;
  let records: CiJobRecord[] = [];
  let lastLine = '';
  for (;;) {
    status = (await fetchStatus(options.url)) ?? status;
    records = status.ciJobs.filter((r) => ours.has(jobKey(r)));
    const started = records.filter((r) => r.agentRunningAt !== undefined).length;
    const finished = records.filter((r) => r.finishedAt !== undefined).length;
    const q = status.queues.find((x) => x.queue === queue.queue) ?? queue;
    const line = `  ${seconds(Date.now() - t0).padStart(6)}: ${started}/${accepted.length} have an agent, ${finished} finished, ${q.inFlight} agents in flight (max ${q.maxAgents})`;
    if (line.replace(/^\s+\S+ s: /, '') !== lastLine) print(line);
    lastLine = line.replace(/^\s+\S+ s: /, '');
    if (finished === accepted.length || Date.now() > deadline) break;
    await sleep(250);
  }

  const waits: { provider: Provider; jobId: string; wait?: number; pod?: string }[] = accepted.map((s) => {
    const r = records.find((x) => x.provider === s.job.provider && x.jobId === s.job.jobId);
    return {
      provider: s.job.provider,
      jobId: s.job.jobId,
      ...(r?.agentRunningAt ? { wait: r.agentRunningAt - s.postedAt } : {}),
      ...(r?.pod ? { pod: r.pod } : {}),
    };
  });
  print('');
  print('CI job                                         waited for an agent   agent pod');
  for (const w of waits.sort((a, b) => (a.wait ?? Infinity) - (b.wait ?? Infinity))) {
    print(
      `  ${w.provider.padEnd(9)} ${w.jobId.padEnd(36)} ${(w.wait === undefined ? 'NO AGENT' : seconds(w.wait)).padStart(10)}            ${w.pod ?? '-'}`,
    );
  }
  const q = status.queues.find((x) => x.queue === queue.queue) ?? queue;
  const waitsOf = (list: typeof waits) => list.flatMap((w) => (w.wait === undefined ? [] : [w.wait]));
  const sorted = waitsOf(waits).sort((a, b) => a - b);
  const finished = records.filter((r) => r.finishedAt !== undefined).length;
  const agentsRequested = q.agentsRequested - requestedBefore;
  const result: DemoResult = {
    ok:
      sorted.length === accepted.length &&
      accepted.length === total &&
      finished === total &&
      q.maxInFlight <= q.maxAgents,
    jobs: total,
    gotAgent: sorted.length,
    finished,
    waitP50Ms: quantile(sorted, 50),
    waitMaxMs: sorted.at(-1) ?? NaN,
    maxInFlight: q.maxInFlight,
    maxAgents: q.maxAgents,
    agentsRequested,
  };
  print('');
  print('What happened');
  for (const provider of PROVIDERS) {
    const mine = waits.filter((w) => w.provider === provider);
    if (mine.length === 0) continue;
    const ws = waitsOf(mine).sort((a, b) => a - b);
    print(
      `  ${provider.padEnd(9)} ${ws.length}/${mine.length} CI jobs got an agent; waited p50 ${seconds(quantile(ws, 50))}, max ${seconds(ws.at(-1) ?? NaN)}`,
    );
  }
  print(
    `  every CI job got an agent: ${sorted.length === total ? 'yes' : `NO (${sorted.length}/${total})`}; ${finished}/${total} finished`,
  );
  print(
    `  wait (webhook POST -> agent pod Running): p50 ${seconds(result.waitP50Ms)}, p95 ${seconds(quantile(sorted, 95))}, max ${seconds(result.waitMaxMs)}`,
  );
  print(
    `  MAX_AGENTS respected: ${q.maxInFlight <= q.maxAgents ? 'yes' : 'NO'} — at most ${q.maxInFlight} agents in flight seen in the cluster (MAX_AGENTS ${q.maxAgents}; sampled every ${before.cluster === 'embedded' ? '50 ms' : '2 s'} since the stack started)`,
  );
  print(
    `  agents provisioned: ${agentsRequested} for ${total} CI jobs in ${q.jobsCreated - jobsBefore} Kubernetes Jobs; ${extraAgentsLine(agentsRequested, total, REDELIVERIES, q.minAgents)}`,
  );
  return result;
}

/**
 * The build cache through the real client (infra/k8s/cache/ci-cache): a restore that misses, a
 * save, and a restore that hits, of a small node_modules-like folder. True when all three did.
 */
export async function runCacheDemo(options: {
  url: string;
  tokenFile: string;
  print?: (line: string) => void;
}): Promise<boolean> {
  const print = options.print ?? console.log;
  const work = await mkdtemp(path.join(os.tmpdir(), 'ci-cache-demo-'));
  const client = path.join(PROJECT_ROOT, 'infra/k8s/cache/ci-cache');
  const run = async (...args: string[]) => {
    const { stderr } = await promisify(execFile)('/bin/sh', [client, ...args], {
      cwd: work,
      env: { ...process.env, CI_CACHE_URL: options.url, CI_CACHE_TOKEN_FILE: options.tokenFile },
    });
    const out = stderr.trim();
    print(`  $ ci-cache ${args.join(' ')}\n    ${out.split('\n').join('\n    ')}`);
    return out;
  };
  try {
    await mkdir(path.join(work, 'node_modules/left-pad'), { recursive: true });
    await writeFile(path.join(work, 'node_modules/left-pad/index.js'), 'module.exports = (s) => s;\n');
    await writeFile(path.join(work, 'node_modules/blob.bin'), randomBytes(12 * 1024 * 1024));
    const key = `demo-npm-${Date.now().toString(36)}`;
    print('');
    print('Build cache (the agent-side client against the cache API, S3 in fauxqs):');
    const miss = await run('restore', key, '--restore-keys', 'demo-npm-nothing-', 'node_modules');
    const saved = await run('save', key, 'node_modules');
    await rm(path.join(work, 'node_modules'), { recursive: true });
    const hit = await run('restore', key, 'node_modules');
    return miss.includes('miss ') && saved.includes('saved ') && hit.includes('hit ');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Each provider's part of the burst: its job names, when its pipeline starts, how many jobs (--<provider>). */
const DEMO: Readonly<Record<Provider, { names: readonly string[]; offsetMs: number; count: number }>> = {
  buildkite: {
    names: [':hammer: build', ':rspec: unit', ':eslint: lint', ':docker: image', ':cucumber: e2e'],
    offsetMs: 0,
    count: 10,
  },
  github: { names: ['test (ubuntu, 20)', 'test (ubuntu, 22)', 'lint', 'typecheck', 'build'], offsetMs: 400, count: 8 },
  gitlab: { names: ['compile', 'unit', 'integration', 'package'], offsetMs: 800, count: 6 },
};

const perProvider = <T>(value: (p: Provider) => T): Record<Provider, T> =>
  Object.fromEntries(PROVIDERS.map((p) => [p, value(p)])) as Record<Provider, T>;

const USAGE = `Usage: npm run demo -- [--url http://127.0.0.1:3000] [--standalone [--cluster kwok]] ${PROVIDERS.map((p) => `[--${p} ${DEMO[p].count}]`).join(' ')}`;

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseDemoArgs>;
  try {
    parsed = parseDemoArgs();
  } catch (error) {
    // node:util parseArgs: unknown option, missing value, stray positional argument.
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    process.exit(2);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const env = process.env;
  const counts = perProvider((p) => Number(values[p]));
  // The stack records its URL and secrets in its run folder: a stack on another port is found.
  const running = runningStack(path.join(PROJECT_ROOT, '.local'), values.url);
  let url = values.url ?? running?.url ?? `http://127.0.0.1:${env.PORT ?? 3000}`;
  const unset = perProvider(() => '');
  let secrets: LocalSecrets = localSigningSecrets(env, running?.secrets ?? unset);
  let stack: LocalStack | undefined;
  let kwok: Awaited<ReturnType<typeof startKwokCluster>> | undefined;
  if (values.cluster !== undefined && values.cluster !== 'kwok' && values.cluster !== 'embedded') {
    console.error(`--cluster must be kwok or embedded, got ${JSON.stringify(values.cluster)}\n${USAGE}`);
    process.exit(2);
  }
  if (values.cluster === 'kwok' && values.url) {
    console.error(`--cluster kwok starts its own stack: it cannot be combined with --url\n${USAGE}`);
    process.exit(2);
  }
  if (values.standalone || values.cluster === 'kwok' || (!values.url && !(await fetchStatus(url)))) {
    console.log(
      values.standalone
        ? 'Starting a local stack for the demo...'
        : `No local stack at ${url}; starting one for the demo...`,
    );
    const agentRunMs = 6000;
    if (values.cluster === 'kwok') {
      console.log('Starting the Kubernetes control plane (etcd, kube-apiserver, controllers, kwok)...');
      kwok = await startKwokCluster(agentRunMs);
    }
    stack = await startLocalStack({
      port: 0,
      ...(kwok ? { kubeconfig: kwok.kubeconfig, simulatedCiKubeconfig: kwok.adminKubeconfig, agentRunMs } : {}),
      onLog: (level, m) => console.error(`  [${level}] ${m}`),
    });
    url = stack.webhookUrl;
    secrets = stack.secrets;
  }
  let code = 1;
  try {
    const result = await runDemo({ url, counts, secrets });
    const tokenFile = (await fetchStatus(url))?.cacheTokenFile;
    const cached = tokenFile ? await runCacheDemo({ url, tokenFile }) : false;
    code = result.ok && cached ? 0 : 1;
  } finally {
    closeConnections();
    await stack?.stop();
    await kwok?.stop();
  }
  process.exit(code);
}

function parseDemoArgs() {
  return parseArgs({
    options: {
      url: { type: 'string' },
      standalone: { type: 'boolean', default: false },
      cluster: { type: 'string' },
      ...perProvider((p) => ({ type: 'string' as const, default: String(DEMO[p].count) })),
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    closeConnections();
    process.exit(1);
  });
}
