/**
 * Webhook benchmark (a script, not a test):
 *   npx tsx test/bench/webhook.ts      (or via `npm run bench`, which calls benchWebhook())
 * Prints JSON with:
 *  - bundle: size of functions/webhook/handler.ts built with esbuild as deployed (serverless.yml:
 *    bundled but for the lazily loaded SSM client, minified, ESM, platform node, mainFields
 *    module,main) and, for comparison, with the
 *    AWS SDK left external (the Lambda Node.js runtime ships @aws-sdk v3);
 *  - coldImport: time to import the bundle in a fresh node process (median of several);
 *  - handler: in-process p50/p99 latency and throughput of the real handler (handler.ts, middy)
 *    against the fauxqs SQS emulator;
 *  - overhead: the same requests with SQS replaced by an immediately-resolving stub, i.e. the
 *    handler's own cost (routing, verification, parsing, normalising).
 * Targets: bundle <= 400 KB, cold import <= 100 ms, overhead p99 <= 2 ms.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Context } from 'aws-lambda';
import * as esbuild from 'esbuild';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler, type WebhookEvent } from '../../functions/webhook/app.js';
import { startSqs } from '../support/sqs.js';
import {
  BUILDKITE_SECRET,
  buildkitePayload,
  buildkiteRequest,
  GITHUB_SECRET,
  GITLAB_TOKEN,
  githubRequest,
  gitlabJob,
  gitlabRequest,
  workflowJobExamples,
} from '../support/webhook-fixtures.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const TARGETS = { bundleKB: 400, coldImportMs: 100, overheadP99Ms: 2 };

// As in serverless.yml (custom.esbuild).
const DEPLOYED: esbuild.BuildOptions = {
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  mainFields: ['module', 'main'],
  banner: {
    js: "import { createRequire as __ciaCreateRequire } from 'node:module'; const require = __ciaCreateRequire(import.meta.url);",
  },
  logLevel: 'error',
};

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

function benchEnv(queueUrl: string, endpoint: string): Record<string, string> {
  return {
    EVENTS_QUEUE_URL: queueUrl,
    QUEUES: 'default,ubuntu-latest,gitlab',
    // A queue per provider, so every request of the mix is accepted (one SQS message each).
    QUEUE_OVERRIDES: JSON.stringify({ 'ubuntu-latest': { provider: 'github' }, gitlab: { provider: 'gitlab' } }),
    BUILDKITE_WEBHOOK_SECRET: BUILDKITE_SECRET,
    GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
    GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
    LOG_LEVEL: 'ERROR',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_ENDPOINT_URL_SQS: endpoint,
  };
}

async function buildBundle(dir: string, name: string, external: string[]) {
  const outfile = join(dir, `${name}.mjs`);
  const result = await esbuild.build({
    ...DEPLOYED,
    entryPoints: [join(ROOT, 'functions/webhook/handler.ts')],
    outfile,
    external,
    metafile: true,
  });
  const inputs = Object.keys(result.metafile!.inputs);
  return {
    outfile,
    bytes: statSync(outfile).size,
    containsKubernetesClient: inputs.some((f) => f.includes('@kubernetes/client-node')),
    containsDynamoDb: inputs.some((f) => f.includes('client-dynamodb') || f.includes('lib-dynamodb')),
  };
}

function coldImportMs(file: string, env: Record<string, string>, runs = 7): number[] {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(file).href)}); process.stdout.write(String(performance.now() - t));`;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const out = execFileSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: ROOT,
      encoding: 'utf8',
    });
    times.push(Number(out));
  }
  return times;
}

function requests(): WebhookEvent[] {
  const queued = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued')!;
  const out: WebhookEvent[] = [];
  for (let i = 0; i < 50; i++) {
    out.push(
      githubRequest({ ...queued, workflow_job: { ...queued.workflow_job, id: 1_000_000 + i } }, { delivery: `d-${i}` }),
    );
    out.push(buildkiteRequest(buildkitePayload('job.scheduled')));
    out.push(gitlabRequest(gitlabJob({ build_id: 5_000_000 + i })));
  }
  return out;
}

async function measure(call: (e: WebhookEvent) => Promise<{ statusCode: number }>, n: number, concurrency = 1) {
  const reqs = requests();
  for (let i = 0; i < 200; i++) await call(reqs[i % reqs.length]!); // warm-up
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  async function worker() {
    while (next < n) {
      const req = reqs[next++ % reqs.length]!;
      const t = performance.now();
      const res = await call(req);
      latencies.push(performance.now() - t);
      if (res.statusCode !== 202) throw new Error(`unexpected status ${res.statusCode}`);
      if (!(res as { body?: string }).body?.includes('"accepted"')) throw new Error('request not accepted');
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: n,
    concurrency,
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    maxMs: round(latencies[latencies.length - 1]!),
    throughputPerSecond: Math.round(n / elapsed),
  };
}

export async function benchWebhook(): Promise<Record<string, unknown>> {
  const cache = join(ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  // Inside the project so the SDK-external variant can resolve @aws-sdk/* like the Lambda runtime would.
  const dir = mkdtempSync(join(cache, 'bench-webhook-'));
  const sqs = await startSqs();
  try {
    const queue = await sqs.createQueue('bench-events', { dlq: false });
    const env = benchEnv(queue.url, sqs.endpoint);

    // As serverless.yml deploys it: everything bundled except the SSM client, which is loaded on
    // first use from the Lambda runtime's AWS SDK (functions/adapters/ssm/client.ts).
    const deployed = await buildBundle(dir, 'webhook', ['@aws-sdk/client-ssm']);
    const sdkExternal = await buildBundle(dir, 'webhook-sdk-external', ['@aws-sdk/*', '@smithy/*']);
    const coldDeployed = coldImportMs(deployed.outfile, env);
    const coldExternal = coldImportMs(sdkExternal.outfile, env);

    // The real entry point, in process, against fauxqs. The logger module reads LOG_LEVEL when it
    // is first imported, so everything that logs is imported after the environment is set.
    Object.assign(process.env, env);
    const { createLogger } = await import('../../functions/shared/logger.js');
    const { resetAwsClients } = await import('../../functions/shared/aws.js');
    resetAwsClients();
    const { handler } = await import('../../functions/webhook/handler.js');
    const context = { functionName: 'webhook', awsRequestId: 'bench' } as unknown as Context;
    const viaSqs = await measure((e) => handler(e as never, context), 3000);
    const viaSqsConcurrent = await measure((e) => handler(e as never, context), 3000, 8);

    // Handler overhead: identical wiring, SQS replaced by a stub that resolves at once.
    const config = loadWebhookConfig(env);
    const overheadHandler = createWebhookHandler({
      config,
      queue: { sendEvent: async () => ({ messageId: 'stub' }) },
      secrets: new SecretStore(config.secrets),
      logger: createLogger('webhook', config.logLevel),
    });
    const overhead = await measure(overheadHandler, 20_000);
    const coldMedian = median(coldDeployed);

    return {
      command: 'npx tsx test/bench/webhook.ts',
      node: process.version,
      bundle: {
        deployedBytes: deployed.bytes,
        deployedKB: round(deployed.bytes / 1024, 1),
        sdkExternalBytes: sdkExternal.bytes,
        sdkExternalKB: round(sdkExternal.bytes / 1024, 1),
        containsKubernetesClient: deployed.containsKubernetesClient,
        containsDynamoDb: deployed.containsDynamoDb,
      },
      coldImport: {
        deployedMedianMs: round(coldMedian, 1),
        deployedRunsMs: coldDeployed.map((t) => round(t, 1)),
        sdkExternalMedianMs: round(median(coldExternal), 1),
      },
      handlerAgainstFauxqs: { sequential: viaSqs, concurrent: viaSqsConcurrent },
      overheadExcludingSqs: overhead,
      notes:
        'LOG_LEVEL=ERROR during latency runs (no per-request log line); requests rotate GitHub queued (signed, ~7 KB), Buildkite job.scheduled (signed), GitLab pending (token).',
      targets: TARGETS,
      meetsTargets: {
        bundle: deployed.bytes <= TARGETS.bundleKB * 1024,
        bundleWithSdkExternal: sdkExternal.bytes <= TARGETS.bundleKB * 1024,
        coldImport: coldMedian <= TARGETS.coldImportMs,
        overheadP99: overhead.p99Ms <= TARGETS.overheadP99Ms,
      },
    };
  } finally {
    await sqs.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchWebhook().then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
