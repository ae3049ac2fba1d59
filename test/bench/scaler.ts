/**
 * Scaler benchmark (a script, not a test), against DynamoDB Local, fauxqs and the fake
 * Kubernetes API server, through the real adapters:
 *
 *   npx tsx test/bench/scaler.ts          # bursts of 1,000 and 10,000, one JSON object
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
import { startFakeKube } from '../../functions/local/fake-kube/index.js';
import { type ScalerLog, tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig } from '../../functions/shared/config.js';
import { createLedgerTable, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { startSqs } from '../support/sqs.js';

const quiet: ScalerLog = { debug() {}, info() {}, warn() {}, error() {} };

interface Counter {
  requests: number;
}

function countRequests(client: { middlewareStack: { add: (...a: never[]) => void } }, counter: Counter): void {
  (client.middlewareStack.add as unknown as (mw: unknown, opts: unknown) => void)(
    (next: (a: unknown) => Promise<unknown>) => async (args: unknown) => {
      counter.requests++;
      return next(args);
    },
    { step: 'deserialize', name: 'benchCounter', override: true },
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

export async function benchScaler(bursts: readonly number[] = [1_000, 10_000]) {
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
      const sqsCount: Counter = { requests: 0 };
      const dynamoCount: Counter = { requests: 0 };
      countRequests(sqsClient(), sqsCount);
      countRequests(dynamoClient(), dynamoCount);
      const { metrics: _metrics, ...ports } = await createPorts(config, quiet);
      const settings = scalerSettings(config);
      kube.calls.length = 0;

      let peakRss = process.memoryUsage().rss;
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }, 20);
      // Ticks until the queue is drained (a tick drains for at most 5 s, then provisions); the
      // last tick, which finds the queue empty, is included.
      const tickUntilDrained = async () => {
        const reports = [];
        for (;;) {
          const r = await tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 120_000 });
          reports.push(r);
          if (r.drain.received === 0) return reports;
        }
      };
      const started = performance.now();
      const burstTicks = await tickUntilDrained();
      const tickMs = performance.now() - started;
      const report = {
        drain: { applied: burstTicks.reduce((n, r) => n + r.drain.applied, 0) },
        created: burstTicks.flatMap((r) => r.created),
        ticks: burstTicks.length,
      };
      clearInterval(sampler);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      const burstRequests = {
        sqs: sqsCount.requests,
        dynamodb: dynamoCount.requests,
        kubernetes: kube.calls.length,
      };
      const provisioned = kube.jobs().reduce((s, j) => s + (j.spec?.parallelism ?? 0), 0);

      // The rest of each CI job's life: it starts, then finishes (agents complete).
      await sendBurst(queue.url, ids, 'started');
      const t2 = await tickUntilDrained();
      await sendBurst(queue.url, ids, 'finished');
      kube.startAll();
      kube.succeedAll();
      const t3 = await tickUntilDrained();
      const applied = (ticks: typeof t2) => ticks.reduce((n, r) => n + r.drain.applied, 0);
      const scalerAws = sqsCount.requests + dynamoCount.requests;

      results.push({
        ciJobs: n,
        burst: {
          wallMs: Math.round(tickMs),
          ticks: report.ticks,
          eventsApplied: report.drain.applied,
          agentsProvisioned: provisioned,
          kubernetesJobsCreated: report.created.length,
          peakRssMiB: Math.round(peakRss / 2 ** 20),
          requests: burstRequests,
          requestsPerCiJob: {
            sqs: +(burstRequests.sqs / n).toFixed(3),
            dynamodb: +(burstRequests.dynamodb / n).toFixed(3),
            kubernetes: +(burstRequests.kubernetes / n).toFixed(5),
          },
        },
        lifecycle: {
          eventsApplied: report.drain.applied + applied(t2) + applied(t3),
          tokensReturned: t3.reduce((n, r) => n + r.released, 0),
          scalerAwsRequests: scalerAws,
          scalerAwsRequestsPerCiJob: +(scalerAws / n).toFixed(3),
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
  return { command: 'npx tsx test/bench/scaler.ts', node: process.version, results };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  benchScaler()
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
