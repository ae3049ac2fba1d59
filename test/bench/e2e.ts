/**
 * End-to-end benchmark over the local stack (a script, not a test):
 *   npx tsx test/bench/e2e.ts [jobs] [ratePerSecond]      (default 1000 jobs at 20/s)
 * or benchEndToEnd({ jobs, ratePerSecond }) from `npm run bench`.
 *
 * `jobs` signed `scheduled` webhooks (Buildkite, GitHub, GitLab in turn) arrive at a steady rate
 * over HTTP at the local stack: the real webhook function -> SQS (fauxqs) -> the real scaler loop
 * (long poll, ledger in DynamoDB Local, limiter, reconcile) -> Kubernetes Job created in the
 * embedded cluster (fake API server over HTTP, real @kubernetes/client-node). Meanwhile the
 * simulated agents run (start 500 ms, run 2 s) and the simulated CI provider sends their
 * started/finished webhooks, so the ledger and the cluster move as in production (3 webhooks
 * per CI job). MAX_AGENTS is set high enough that capacity never binds: this measures the
 * pipeline's latency, not waiting for a free agent.
 *
 * Latency of a CI job = time the API server answered the create of the Job that carries its
 * agent - time its webhook POST was sent. Agents are attributed to webhooks in arrival order
 * (the k-th agent created serves the k-th webhook), as agents take the oldest waiting job.
 * Target: p99 <= 2 s.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Provider } from '../../functions/core/job-event.js';
import { closeConnections, delivery, newCiJob, post } from '../../functions/local/ci-webhooks.js';
import { startLocalStack } from '../../functions/local/stack.js';
import { percentile } from '../../functions/simulate/simulate.js';

const TARGET_P99_MS = 2000;

const round = (n: number) => Math.round(n * 10) / 10;

export interface EndToEndResult {
  readonly jobs: number;
  readonly ratePerSecond: number;
  readonly webhookPostMs: { p50: number; p99: number; max: number; non202: number };
  readonly postToJobCreatedMs: { p50: number; p90: number; p99: number; max: number };
  readonly agentsCreated: number;
  readonly kubernetesJobs: number;
  readonly maxInFlight: number;
  readonly scalerTicks: number;
  readonly warnings: number;
  readonly targetP99Ms: number;
  readonly pass: boolean;
}

export async function benchEndToEnd(options: { jobs?: number; ratePerSecond?: number } = {}): Promise<EndToEndResult> {
  const jobs = options.jobs ?? 1000;
  const rate = options.ratePerSecond ?? 20;
  const created: { at: number; count: number }[] = [];
  let warnings = 0;
  const stack = await startLocalStack({
    port: 0,
    env: { QUEUES: 'default', MAX_AGENTS: String(Math.max(10, jobs)), MIN_AGENTS: '0' },
    agentStartMs: 500,
    agentRunMs: 2000,
    onJobCreated: (j) => {
      if (j.result === 'created') created.push({ at: Date.now(), count: j.count });
    },
    onLog: () => {
      warnings++;
    },
  });
  try {
    const providers: Provider[] = ['buildkite', 'github', 'gitlab'];
    const sentAt: number[] = new Array(jobs);
    const postMs: number[] = [];
    let non202 = 0;
    const t0 = Date.now() + 200;
    await Promise.all(
      Array.from({ length: jobs }, async (_, i) => {
        const due = t0 + (i * 1000) / rate;
        await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
        const job = newCiJob(providers[i % 3]!, 'default');
        const d = delivery(job, 'scheduled', stack.secrets);
        const start = Date.now();
        sentAt[i] = start;
        const res = await post(stack.webhookUrl, d);
        postMs.push(Date.now() - start);
        if (res.status !== 202) non202++;
      }),
    );
    // Wait until an agent was created for every webhook (or give up after 30 s more).
    const deadline = Date.now() + 30_000;
    const total = () => created.reduce((n, c) => n + c.count, 0);
    while (total() < jobs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

    const order = sentAt.map((t, i) => ({ t, i })).sort((a, b) => a.t - b.t);
    const latencies: number[] = [];
    let k = 0;
    let cumulative = 0;
    for (const c of created) {
      cumulative += c.count;
      while (k < order.length && k < cumulative) {
        latencies.push(Math.max(0, c.at - order[k]!.t));
        k++;
      }
    }
    const missing = jobs - latencies.length;
    for (let m = 0; m < missing; m++) latencies.push(Infinity);
    latencies.sort((a, b) => a - b);
    postMs.sort((a, b) => a - b);
    const status = stack.status();
    const q = status.queues[0]!;
    const p99 = percentile(latencies, 99);
    return {
      jobs,
      ratePerSecond: rate,
      webhookPostMs: {
        p50: round(percentile(postMs, 50)),
        p99: round(percentile(postMs, 99)),
        max: round(postMs.at(-1) ?? NaN),
        non202,
      },
      postToJobCreatedMs: {
        p50: round(percentile(latencies, 50)),
        p90: round(percentile(latencies, 90)),
        p99: round(p99),
        max: round(latencies.at(-1) ?? NaN),
      },
      agentsCreated: total(),
      kubernetesJobs: created.length,
      maxInFlight: q.maxInFlight,
      scalerTicks: status.ticks,
      warnings,
      targetP99Ms: TARGET_P99_MS,
      pass: p99 <= TARGET_P99_MS && non202 === 0,
    };
  } finally {
    closeConnections();
    await stack.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [jobs, rate] = process.argv.slice(2).map(Number);
  benchEndToEnd({ ...(jobs ? { jobs } : {}), ...(rate ? { ratePerSecond: rate } : {}) }).then(
    (result) => {
      console.log(JSON.stringify({ e2e: result }, null, 2));
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
