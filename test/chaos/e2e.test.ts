/**
 * The end-to-end chaos suite: a few seeded schedules through the REAL handlers
 * (functions/webhook/handler.ts in process, functions/scaler/handler.ts bundled and run as child
 * processes, 2-3 overlapping, some SIGKILLed at random moments) against DynamoDB Local behind a
 * fault proxy (500s and ProvisionedThroughputExceededException), fauxqs (SQS with a dead-letter
 * queue) and the fake Kubernetes API (with 429/500 answers and an operator deleting a Job).
 * Simulated agents run the pods: start, take the oldest waiting CI job of their queue, run it,
 * exit; some fail at start. Webhooks are delivered 1-3 times, late and out of order.
 *
 * Invariants: after every poll (50 ms) no queue has more than MAX_AGENTS agent pods that are
 * not terminated; after the faults stop every CI job that was scheduled and not cancelled is
 * taken within the bound; at the end the limiter's counter equals the cluster's agents in
 * flight, the events queue and the dead-letter queue are empty, the ledger holds every job at
 * the state its events say, and agents made <= 1.05 x the CI jobs (+ agents lost).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { V1Pod } from '@kubernetes/client-node';
import type { Context } from 'aws-lambda';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoLedgerStore } from '../../functions/adapters/dynamodb/ledger-store.js';
import { DynamoLimiterStore } from '../../functions/adapters/dynamodb/limiter-store.js';
import { liveAgents, QUEUE_ANNOTATION } from '../../functions/core/agent-job.js';
import type { JobEventKind } from '../../functions/core/job-event.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal } from '../support/dynamodb.js';
import { type SqsHarness, startSqs, TEST_AWS_ENV } from '../support/sqs.js';
import { BUILDKITE_SECRET, buildkiteJob, buildkitePayload, buildkiteRequest } from '../support/webhook-fixtures.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { mulberry32 } from './model.js';

const SEEDS = [1, 2];
const QUEUES = ['q0', 'q1'];
const MAX_AGENTS = 3;
const LEASE_S = 10;
const VISIBILITY_S = 3;
const PERIOD_MS = 1_500;
const BUDGET_MS = 4_000;
const CHAOS_MS = 7_000;
const WEBHOOK_DELAY_MAX_MS = 2_500;
const JOB_MAX_MS = 2_500;
const STARTUP_MAX_MS = 800;
const IDLE_MS = 3_000;
/** Real processes on a shared machine: room for slow start-ups of the scaler processes. */
const SLACK_MS = 45_000;
/**
 * After max(arrival, end of the faults): lease + visibility + webhook delay + per wave (run,
 * start, two periods, exit) + the slack.
 */
const boundMs = (waves: number) =>
  LEASE_S * 1000 +
  VISIBILITY_S * 1000 +
  WEBHOOK_DELAY_MAX_MS +
  waves * (JOB_MAX_MS + STARTUP_MAX_MS + 2 * PERIOD_MS + 1_000) +
  SLACK_MS;

let dynamo: DynamoDbLocal;
let sqs: SqsHarness;
let kube: FakeKube;
let buildDir: string;
let bundle: string;
const saved = { ...process.env };

beforeAll(async () => {
  [dynamo, sqs, kube] = await Promise.all([startDynamoDbLocal(), startSqs(), startFakeKube()]);
  buildDir = mkdtempSync(join(tmpdir(), 'chaos-e2e-'));
  bundle = join(buildDir, 'scaler.mjs');
  // The scaler handler as one file, so each child process starts fast (like the Lambda bundle).
  await build({
    entryPoints: [join(import.meta.dirname, 'e2e-scaler-main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    outfile: bundle,
    mainFields: ['module', 'main'],
    external: ['@aws-sdk/client-ssm'],
    banner: { js: "import { createRequire as __c } from 'node:module'; const require = __c(import.meta.url);" },
    logLevel: 'error',
  });
});

afterAll(async () => {
  process.env = saved;
  resetAwsClients();
  await Promise.all([dynamo?.stop(), sqs?.stop(), kube?.stop()]);
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

interface CiJob {
  readonly id: string;
  readonly queue: string;
  readonly arrival: number;
  readonly duration: number;
  readonly cancelAt?: number;
  state: 'future' | 'waiting' | 'running' | 'finished' | 'cancelled';
  takenAt?: number;
  scheduledAt?: string;
  startedAt?: string;
  readonly emitted: Set<JobEventKind>;
}

interface Agent {
  readonly queue: string;
  readonly readyAt: number;
  readonly fails: boolean;
  state: 'pending' | 'idle' | 'busy' | 'done';
  idleSince?: number;
  job?: CiJob;
  doneAt?: number;
}

const bkTime = (ms: number) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const webhookContext = {
  functionName: 'webhook',
  awsRequestId: 'chaos',
  invokedFunctionArn: 'arn',
  memoryLimitInMB: '256',
} as unknown as Context;

async function schedule(seed: number): Promise<{ violations: string[]; stats: Record<string, number> }> {
  const random = mulberry32(seed * 7919);
  const int = (n: number) => Math.floor(random() * n);
  const violations: string[] = [];
  const fail = (text: string) => {
    if (violations.length < 10) violations.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${text}`);
  };

  const table = `chaos-${seed}`;
  await createLedgerTable(dynamo.endpoint, table);
  const queue = await sqs.createQueue(`chaos-${seed}`, { maxReceiveCount: 5, visibilityTimeoutSeconds: VISIBILITY_S });
  const proxy: FaultProxy = await startFaultProxy(dynamo.endpoint, seed);
  kube.reset();

  // The webhook, in process, configured from its environment at cold start.
  process.env = {
    ...saved,
    ...TEST_AWS_ENV,
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    EVENTS_QUEUE_URL: queue.url,
    QUEUES: QUEUES.join(','),
    BUILDKITE_WEBHOOK_SECRET: BUILDKITE_SECRET,
    LOG_LEVEL: 'ERROR',
    POWERTOOLS_METRICS_DISABLED: 'true',
  };
  resetAwsClients();
  vi.resetModules();
  const { handler: webhook } = await import('../../functions/webhook/handler.js');

  const scalerEnv: NodeJS.ProcessEnv = {
    ...saved,
    ...TEST_AWS_ENV,
    AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint,
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    EVENTS_QUEUE_URL: queue.url,
    LEDGER_TABLE: table,
    KUBECONFIG: kube.kubeconfigPath,
    QUEUES: QUEUES.join(','),
    MAX_AGENTS: String(MAX_AGENTS),
    SCALER_POLL_SECONDS: '1',
    INTENT_LEASE_SECONDS: String(LEASE_S),
    JOB_TTL_SECONDS_AFTER_FINISHED: String(LEASE_S),
    LOG_LEVEL: 'ERROR',
    POWERTOOLS_METRICS_DISABLED: 'true',
  };

  // --- the CI workload ---
  const t0 = Date.now();
  const jobs: CiJob[] = [];
  const n = 4 + int(4);
  const bursts = [int(2_000), 2_000 + int(4_000)];
  for (let i = 0; i < n; i++) {
    const arrival = (bursts[int(2)] ?? 0) + int(500);
    const cancel = int(8) === 0;
    jobs.push({
      id: `0190a4b8-${seed.toString(16).padStart(4, '0')}-4b7e-9a53-${i.toString(16).padStart(12, '0')}`,
      queue: QUEUES[int(QUEUES.length)] as string,
      arrival,
      duration: 500 + int(JOB_MAX_MS - 500),
      ...(cancel ? { cancelAt: arrival + int(3_000) } : {}),
      state: 'future',
      emitted: new Set(),
    });
  }
  const waves = Math.max(...QUEUES.map((q) => Math.ceil(jobs.filter((j) => j.queue === q).length / MAX_AGENTS)));
  let deliveries = 0;
  const deliver = (job: CiJob, kind: JobEventKind) => {
    job.emitted.add(kind);
    const now = Date.now();
    if (kind === 'scheduled') job.scheduledAt = bkTime(now);
    if (kind === 'started') job.startedAt = bkTime(now);
    const payload = buildkitePayload(
      kind === 'scheduled' ? 'job.scheduled' : `job.${kind === 'started' ? 'started' : 'finished'}`,
      buildkiteJob({
        id: job.id,
        agent_query_rules: [`queue=${job.queue}`],
        state: kind === 'cancelled' ? 'canceled' : kind === 'finished' ? 'passed' : kind,
        scheduled_at: job.scheduledAt ?? bkTime(now),
        started_at: kind === 'started' || kind === 'finished' ? (job.startedAt ?? bkTime(now)) : null,
        finished_at: kind === 'finished' || kind === 'cancelled' ? bkTime(now) : null,
      }),
    );
    const copies = 1 + int(3);
    for (let i = 0; i < copies; i++) {
      deliveries++;
      setTimeout(
        async () => {
          try {
            // A webhook the endpoint did not accept is retried by the provider.
            for (let attempt = 0; attempt < 20; attempt++) {
              const res = await webhook(buildkiteRequest(payload) as never, webhookContext);
              if (res.statusCode === 202) return;
              if (res.statusCode < 500) {
                fail(`webhook answered ${res.statusCode}: ${res.body}`);
                return;
              }
              await sleep(200);
            }
            fail('webhook never accepted an event');
          } finally {
            deliveries--;
          }
        },
        int(4) === 0 ? int(WEBHOOK_DELAY_MAX_MS) : int(400),
      );
    }
  };

  const waiting = (queue: string) =>
    jobs.filter((j) => j.queue === queue && j.state === 'waiting').sort((a, b) => a.arrival - b.arrival);

  // --- scalers: a child process per invocation, some SIGKILLed ---
  const children = new Set<ChildProcess>();
  let kills = 0;
  let invocations = 0;
  let completed = 0;
  let received = 0;
  let requested = 0;
  let tickErrors = 0;
  const invoke = (budgetMs: number, killable: boolean): Promise<void> => {
    invocations++;
    const child = spawn(process.execPath, [bundle], {
      cwd: join(import.meta.dirname, '..', '..'),
      env: { ...scalerEnv, CHAOS_BUDGET_MS: String(budgetMs) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      try {
        const r = JSON.parse(d.toString()) as { eventsReceived: number; agentsRequested: number; errors: number };
        received += r.eventsReceived;
        requested += r.agentsRequested;
        tickErrors += r.errors;
      } catch {
        // not a result line
      }
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    if (killable && int(3) === 0) {
      setTimeout(() => {
        if (chaos() && child.exitCode === null && child.kill('SIGKILL')) kills++;
      }, 300 + int(budgetMs));
    }
    return new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        children.delete(child);
        if (code === 0) completed++;
        // SIGKILL (ours), or the Lambda timeout (middy's early timeout at the context's deadline,
        // reached on a loaded machine): a crash, which the next invocation repairs.
        // Exit 1 when no tick of the invocation succeeded (by design: the next one retries).
        else if (signal !== 'SIGKILL' && !stderr.includes('TimeoutError') && !stderr.includes('scaler tick failed'))
          fail(`scaler exited ${code}: ${stderr.slice(0, 300)}`);
        resolve();
      });
    });
  };

  // --- agents ---
  const agents = new Map<string, Agent>();
  const jobsSeen = new Map<string, number>();
  let lost = 0;
  let deleted = 0;
  const chaos = () => Date.now() - t0 < CHAOS_MS;

  const step = () => {
    const now = Date.now();
    for (const job of jobs) {
      if (job.state === 'future' && now - t0 >= job.arrival) {
        job.state = 'waiting';
        deliver(job, 'scheduled');
      }
      if (job.cancelAt !== undefined && job.state === 'waiting' && now - t0 >= job.cancelAt) {
        job.state = 'cancelled';
        deliver(job, 'cancelled');
      }
    }
    for (const j of kube.jobs()) {
      const name = j.metadata?.name ?? '';
      if (!jobsSeen.has(name)) jobsSeen.set(name, j.spec?.parallelism ?? 0);
    }
    const pods: V1Pod[] = kube.pods();
    const live = new Map<string, number>();
    for (const pod of pods) {
      const name = pod.metadata?.name ?? '';
      const queue = pod.metadata?.annotations?.[QUEUE_ANNOTATION] ?? '?';
      const phase = pod.status?.phase;
      if (phase === 'Pending' || phase === 'Running') live.set(queue, (live.get(queue) ?? 0) + 1);
      let agent = agents.get(name);
      if (!agent) {
        agent = {
          queue,
          readyAt: now + 200 + int(STARTUP_MAX_MS - 200),
          fails: chaos() && int(10) === 0,
          state: 'pending',
        };
        agents.set(name, agent);
      }
      if (agent.state === 'pending' && phase === 'Pending' && now >= agent.readyAt) {
        if (agent.fails) {
          kube.failPod(name);
          agent.state = 'done';
          lost++;
          continue;
        }
        kube.runPod(name);
        agent.state = 'idle';
        agent.idleSince = now;
      }
      if (agent.state === 'busy' && agent.job && agent.doneAt !== undefined && now >= agent.doneAt) {
        const job = agent.job;
        job.state = 'finished';
        deliver(job, 'finished');
        agent.state = 'done';
        if (pod.status?.phase === 'Running') kube.succeedPod(name);
      }
      if (agent.state === 'idle') {
        const next = waiting(queue)[0];
        if (next) {
          next.state = 'running';
          next.takenAt = now;
          agent.state = 'busy';
          agent.job = next;
          agent.doneAt = now + next.duration;
          deliver(next, 'started');
        } else if (now - (agent.idleSince ?? now) >= IDLE_MS) {
          agent.state = 'done';
          kube.succeedPod(name);
        }
      }
    }
    // Invariant after every step: never more than MAX_AGENTS agent pods in flight per queue.
    for (const [queue, count] of live) {
      if (count > MAX_AGENTS) fail(`${count} agent pods in flight on ${queue}, MAX_AGENTS ${MAX_AGENTS}`);
    }
    // A pod gone without us (the operator's delete): its agent is lost; a CI job it ran fails.
    const names = new Set(pods.map((p) => p.metadata?.name ?? ''));
    for (const [name, agent] of agents) {
      if (agent.state === 'done' || names.has(name)) continue;
      agent.state = 'done';
      lost++;
      if (agent.job && agent.job.state === 'running') {
        agent.job.state = 'finished';
        deliver(agent.job, 'finished');
      }
    }
    // Liveness once the faults have stopped.
    if (!chaos()) {
      for (const job of jobs) {
        if (job.state !== 'waiting') continue;
        const from = Math.max(job.arrival, CHAOS_MS);
        if (now - t0 > from + boundMs(waves))
          fail(
            `${job.id} (${job.queue}) has no agent ${((now - t0 - from) / 1000).toFixed(1)}s after the faults stopped`,
          );
      }
    }
  };

  // --- the run ---
  proxy.rate = 0.15;
  let nextInvoke = 0;
  let polls = 0;
  let nextKubeFault = 500;
  const deleteAt = 2_000 + int(5_000);
  let operatorDone = false;
  const running: Promise<void>[] = [];
  const quiet = async () =>
    !chaos() &&
    deliveries === 0 &&
    jobs.every((j) => j.state === 'finished' || j.state === 'cancelled') &&
    [...agents.values()].every((a) => a.state === 'done') &&
    (await sqs.depth(queue.url)) === 0;
  const hardStop = CHAOS_MS + boundMs(waves) + 10_000;
  for (;;) {
    step();
    const elapsed = Date.now() - t0;
    if (!chaos() && proxy.rate > 0) {
      // The faults stop: no more DynamoDB errors, no Kubernetes error left pending.
      proxy.rate = 0;
      // FakeKube keeps an injected fault until a request uses it: drop those left.
      (kube as unknown as { faults: unknown[] }).faults = [];
    }
    if (elapsed >= nextInvoke) {
      running.push(invoke(BUDGET_MS, chaos()));
      nextInvoke += PERIOD_MS;
    }
    if (chaos() && elapsed >= nextKubeFault) {
      kube.failNext(int(2) === 0 ? 'POST' : 'GET', '/jobs', int(2) === 0 ? 429 : 500, 1 + int(2));
      nextKubeFault += 400 + int(1_200);
    }
    if (!operatorDone && elapsed >= deleteAt) {
      const live = kube.jobs().filter((j) => liveAgents(j) > 0);
      const victim = live[int(Math.max(1, live.length))];
      if (victim?.metadata?.name) {
        operatorDone = true;
        deleted++;
        kube.deleteJobOutOfBand(victim.metadata.name);
      }
    }
    if (elapsed > hardStop) {
      fail('no end in time');
      break;
    }
    if (process.env.CHAOS_DEBUG && ++polls % 20 === 0)
      console.log(
        ((Date.now() - t0) / 1000).toFixed(1),
        JSON.stringify(jobs.map((j) => j.state[0]).join('')),
        JSON.stringify(kube.pods().map((p) => `${p.metadata?.annotations?.[QUEUE_ANNOTATION]}:${p.status?.phase}`)),
        JSON.stringify([...agents.values()].map((a) => a.state[0]).join('')),
        await sqs.depth(queue.url),
        received,
        requested,
      );
    if (await quiet()) break;
    await sleep(50);
  }
  await Promise.all(running);
  // One last invocation reconciles the counter with the cluster, once every intent's lease has
  // run out (a create that may still land keeps its tokens until then).
  await sleep(LEASE_S * 1000);
  await invoke(500, false);
  step();

  // --- the end ---
  const client = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    }),
  );
  const limiter = new DynamoLimiterStore({ tableName: table, client });
  const ledger = new DynamoLedgerStore({ tableName: table, client });
  const snapshot = await limiter.snapshot();
  for (const q of QUEUES) {
    const counter = snapshot.limiters.find((l) => l.queue === q)?.inFlight ?? 0;
    const inCluster = kube
      .jobs()
      .filter((j) => j.metadata?.annotations?.[QUEUE_ANNOTATION] === q)
      .reduce((sum, j) => sum + liveAgents(j), 0);
    if (counter !== inCluster) fail(`limiter counter of ${q} is ${counter}, the cluster has ${inCluster} in flight`);
  }
  const order: JobEventKind[] = ['scheduled', 'started', 'cancelled', 'finished'];
  for (const job of jobs) {
    const expected = [...job.emitted].sort((a, b) => order.indexOf(b) - order.indexOf(a))[0];
    const stored = await ledger.get({ provider: 'buildkite', jobId: job.id });
    if (stored?.state !== expected)
      fail(`${job.id}: ledger says ${stored?.state ?? 'nothing'}, events say ${expected}`);
  }
  const depth = await sqs.depth(queue.url);
  const dlq = queue.dlqUrl ? await sqs.depth(queue.dlqUrl) : 0;
  if (depth !== 0 || dlq !== 0) fail(`events queue holds ${depth}, dead-letter queue ${dlq}`);
  const made = [...jobsSeen.values()].reduce((a, b) => a + b, 0);
  const needed = jobs.length + lost;
  if (made > Math.floor(needed * 1.05)) fail(`${made} agents made for ${jobs.length} CI jobs (+${lost} lost)`);
  client.destroy();
  await proxy.stop();
  for (const child of children) child.kill('SIGKILL');
  return {
    violations,
    stats: {
      jobs: jobs.length,
      made,
      lost,
      invocations,
      completed,
      received,
      requested,
      tickErrors,
      kills,
      deleted,
      throttled: proxy.injected.throttled,
      internal: proxy.injected.internal,
      seconds: Math.round((Date.now() - t0) / 100) / 10,
    },
  };
}

describe('chaos (end to end): real handlers, emulators, DynamoDB fault proxy, SIGKILLed scalers', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: every invariant holds`, async () => {
      const { violations, stats } = await schedule(seed);
      console.log(`chaos e2e seed ${seed}: ${JSON.stringify(stats)}`);
      expect(violations).toEqual([]);
    }, 240_000);
  }
});
