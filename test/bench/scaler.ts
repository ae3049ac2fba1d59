/**
 * Scaler benchmark (a script, not a test), against DynamoDB Local, fauxqs and the fake
 * Kubernetes API server, through the real adapters:
 *
 *   npx tsx test/bench/scaler.ts              # bursts of 1,000 and 10,000, one JSON object
 *   npx tsx test/bench/scaler.ts 100000       # one burst of 100,000
 *   node --cpu-prof --cpu-prof-dir=.local/prof --import tsx test/bench/scaler.ts 100000
 *   npx tsx test/bench/profile-split.ts .local/prof/*.cpuprofile   # where this process's CPU went
 *
 * For a burst of N `scheduled` events already in SQS, the ticks (drain + apply + reconcile +
 * decide + reserve + submit) until all are applied and provisioned, with MAX_AGENTS = N: wall
 * time, peak RSS, and requests per service.
 * Then the same CI jobs start and finish (two more bursts and ticks) to count the AWS requests a
 * CI job costs over its whole life. Requests are counted once per HTTP attempt.
 */
import { pathToFileURL } from 'node:url';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { dynamoClient } from '../../functions/adapters/dynamodb/client.js';
import { sqsClient } from '../../functions/adapters/sqs/client.js';
import type { JobEvent, JobEventKind } from '../../functions/core/job-event.js';
import type { ScalerLog } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig } from '../../functions/shared/config.js';
import { startFakeKube } from '../../tools/fakes/kube/index.js';
import { createLedgerTable, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { startSqs } from '../support/sqs.js';
import { cpuMsSince, processCpuMs, progress } from './progress.js';

const quiet: ScalerLog = { debug() {}, info() {}, warn() {}, error() {} };

export interface Counter {
  requests: number;
  /** Requests per operation (GetItem, TransactWriteItems, ReceiveMessage, ...). */
  byOperation: Record<string, number>;
}

let counters = 0;

export const counter = (): Counter => ({ requests: 0, byOperation: {} });

/** Counts every HTTP attempt of a client's requests (retries included), per operation. */
export function countRequests(
  client: { middlewareStack: { add: (...a: never[]) => void } },
  counter: Counter,
  skip: (operation: string) => boolean = () => false,
): void {
  (client.middlewareStack.add as unknown as (mw: unknown, opts: unknown) => void)(
    (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      const operation = (context.commandName ?? '?').replace(/Command$/, '');
      if (!skip(operation)) {
        counter.requests++;
        counter.byOperation[operation] = (counter.byOperation[operation] ?? 0) + 1;
      }
      return next(args);
    },
    // Named apart: two counters on one client (the stack's SQS client: webhook and scaler) both count.
    { step: 'deserialize', name: `benchCounter${++counters}` },
  );
}

async function sendBurst(url: string, ids: string[], kind: JobEventKind): Promise<void> {
  const now = new Date().toISOString();
  const messages = ids.map((jobId) => jobEvent(jobId, kind, { occurredAt: now }));
  const chunks: JobEvent[][] = [];
  for (let i = 0; i < messages.length; i += 10) chunks.push(messages.slice(i, i + 10));
  for (let i = 0; i < chunks.length; i += 50) {
    await Promise.all(
      chunks.slice(i, i + 50).map((chunk) =>
        sqsClient().send(
          new SendMessageBatchCommand({
            QueueUrl: url,
            Entries: chunk.map((e, n) => ({ Id: String(n), MessageBody: JSON.stringify(e) })),
          }),
        ),
      ),
    );
  }
}

export async function benchScaler(bursts: readonly number[] = [1_000, 10_000], lifecycleUpTo = 10_000) {
  const [dynamo, sqs, kube] = await Promise.all([startDynamoDbLocal(), startSqs(), startFakeKube()]);
  useDynamoDbLocal(dynamo.endpoint);
  sqs.useEnv();
  resetAwsClients();
  const results = [];
  try {
    for (const n of bursts) {
      kube.reset();
      const queue = await sqs.createQueue(`bench-${n}`, { visibilityTimeoutSeconds: 120 });
      const table = `bench-${n}`;
      await createLedgerTable(dynamo.endpoint, table);
      const config = loadScalerConfig({
        EVENTS_QUEUE_URL: queue.url,
        LEDGER_TABLE: table,
        KUBECONFIG: kube.kubeconfigPath,
        MAX_AGENTS: String(n),
      });
      const ids = Array.from({ length: n }, (_, i) => `bench-${n}-${i}`);
      await sendBurst(queue.url, ids, 'scheduled');

      resetAwsClients();
      const sqsCount = counter();
      const dynamoCount = counter();
      // The benchmark's own SendMessageBatch (the events it puts in the queue) are not the scaler's.
      countRequests(sqsClient(), sqsCount, (operation) => operation === 'SendMessageBatch');
      countRequests(dynamoClient(), dynamoCount);
      const { metrics: _metrics, ...ports } = await createPorts(config, quiet);
      const settings = scalerSettings(config);
      kube.calls.length = 0;

      let peakRss = process.memoryUsage.rss();
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage.rss());
      }, 20);
      // Ticks until the queue is drained (a tick drains for at most 5 s, then provisions); the
      // last tick, which finds the queue empty, is included.
      const tickUntilDrained = async (what: string) => {
        const reports = [];
        let applied = 0;
        for (;;) {
          const r = await tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 120_000 });
          reports.push(r);
          applied += r.drain.applied;
          progress('scaler', `${what}: tick ${reports.length}, ${applied} events applied`);
          if (r.drain.received === 0) return reports;
        }
      };
      progress('scaler', `burst of ${n}: ${n} scheduled events in SQS, ticking`);
      const started = performance.now();
      const cpu = process.cpuUsage();
      const jvm = processCpuMs(dynamo.pid);
      const burstTicks = await tickUntilDrained(`burst of ${n}`);
      const tickMs = performance.now() - started;
      const cpuMs = cpuMsSince(cpu);
      const jvmMs = (processCpuMs(dynamo.pid) ?? NaN) - (jvm ?? NaN);
      const report = {
        drain: { applied: burstTicks.reduce((n, r) => n + r.drain.applied, 0) },
        created: burstTicks.flatMap((r) => r.created),
        ticks: burstTicks.length,
      };
      clearInterval(sampler);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      const burstRequests = {
        sqs: sqsCount.requests,
        dynamodb: dynamoCount.requests,
        kubernetes: kube.calls.length,
      };
      const burstByOperation = { ...sqsCount.byOperation, ...dynamoCount.byOperation };
      const provisioned = kube.jobs().reduce((s, j) => s + (j.spec?.parallelism ?? 0), 0);

      const burstFigures = () => ({
        wallMs: Math.round(tickMs),
        cpu: {
          // This process: the scaler, the SDK, and the in-process fauxqs and fake API server.
          processMs: Math.round(cpuMs),
          processUsPerEvent: Math.round((cpuMs * 1000) / n),
          // DynamoDB Local's JVM (null where /proc is not there).
          dynamodbLocalMs: Number.isFinite(jvmMs) ? Math.round(jvmMs) : null,
          dynamodbLocalUsPerEvent: Number.isFinite(jvmMs) ? Math.round((jvmMs * 1000) / n) : null,
        },
        ticks: report.ticks,
        eventsApplied: report.drain.applied,
        agentsProvisioned: provisioned,
        kubernetesJobsCreated: report.created.length,
        peakRssMiB: Math.round(peakRss / 2 ** 20),
        requests: burstRequests,
        byOperation: burstByOperation,
        kubernetesCallsPerTick: +(burstRequests.kubernetes / report.ticks).toFixed(2),
        requestsPerCiJob: {
          sqs: +(burstRequests.sqs / n).toFixed(3),
          dynamodb: +(burstRequests.dynamodb / n).toFixed(3),
          kubernetes: +(burstRequests.kubernetes / n).toFixed(5),
        },
      });

      // The rest of each CI job's life: it starts, then finishes (agents complete). Measured on
      // bursts up to 10,000 only (per CI job it does not change with the burst's size).
      if (n > lifecycleUpTo) {
        results.push({ ciJobs: n, burst: burstFigures() });
        continue;
      }
      await sendBurst(queue.url, ids, 'started');
      const t2 = await tickUntilDrained(`${n} started`);
      await sendBurst(queue.url, ids, 'finished');
      kube.startAll();
      kube.succeedAll();
      const t3 = await tickUntilDrained(`${n} finished`);
      const applied = (ticks: typeof t2) => ticks.reduce((n, r) => n + r.drain.applied, 0);
      const scalerAws = sqsCount.requests + dynamoCount.requests;

      results.push({
        ciJobs: n,
        burst: burstFigures(),
        lifecycle: {
          eventsApplied: report.drain.applied + applied(t2) + applied(t3),
          tokensReturned: t3.reduce((n, r) => n + r.released, 0),
          scalerAwsRequests: scalerAws,
          scalerAwsRequestsPerCiJob: +(scalerAws / n).toFixed(3),
          byOperation: { ...sqsCount.byOperation, ...dynamoCount.byOperation },
          // The webhook's SendMessage per event (3 per CI job) comes on top.
          withWebhookSendsPerCiJob: +((scalerAws + 3 * n) / n).toFixed(3),
          kubernetesCallsTotal: kube.calls.length,
          ticks: burstTicks.length + t2.length + t3.length,
        },
      });
    }
  } finally {
    resetAwsClients();
    await Promise.all([dynamo.stop(), sqs.stop(), kube.stop()]);
  }
  return { command: `npx tsx test/bench/scaler.ts ${bursts.join(' ')}`, node: process.version, results };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  benchScaler(sizes.length > 0 ? sizes : undefined)
    .then((r) => {
      console.log(JSON.stringify(r, null, 2));
      process.exit(0);
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
