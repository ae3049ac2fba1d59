/**
 * `npm start`: the whole product on this machine (see stack.ts), with a live status per queue.
 *
 *   npm start [-- --port 3000] [--kubeconfig PATH | --embedded | --cluster kwok] [--agent-start-ms 1500] [--agent-run-ms 6000]
 *
 * Every production variable (functions/shared/config.ts: QUEUES, MIN_AGENTS, MAX_AGENTS,
 * QUEUE_OVERRIDES, JOB_TEMPLATE, *_WEBHOOK_SECRET, ...) is read from the environment over the
 * local defaults. KUBECONFIG (or --kubeconfig) points the scaler at a real cluster instead of
 * the embedded simulated one; --embedded forces the simulated cluster whatever KUBECONFIG says.
 * --cluster kwok starts the real control plane of the tests (tools/k8s/control-plane.ts, built by
 * `npm run k8s:build`: kube-apiserver, etcd, the controllers, kwok nodes), applies infra/k8s to
 * KUBE_NAMESPACE and runs the scaler against it as its own identity (group ci-agent-autoscaler).
 * Ctrl-C stops everything: the scaler loop, the HTTP endpoint, the emulators (no Java process
 * left) and removes the run folder under .local/.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PROVIDERS, type Provider } from '../../functions/core/job-event.js';
import { ConfigError } from '../../functions/shared/config.js';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';
import { SECRET_VARIABLES } from './ci-webhooks.js';
import { startKwokCluster } from './kwok-cluster.js';
import { type LocalStack, startLocalStack } from './stack.js';
import { decisionLine, statusLines, Terminal } from './terminal.js';

// The SDK's notice that its 2027 releases need Node 22 is not news to someone trying the product.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const HELP = `Usage: npm start -- [options]
  --port N              webhook port on 127.0.0.1 (default $PORT or 3000; 0 = any free port)
  --kubeconfig PATH     use a real cluster (default: $KUBECONFIG if set, else the embedded simulated cluster)
  --embedded            use the embedded simulated cluster even if KUBECONFIG is set
  --cluster kwok        start a real control plane (npm run k8s:build: kube-apiserver, etcd, controllers,
                        kwok nodes) and use it; agent pods run --agent-run-ms, then succeed, and the
                        simulated CI gives each Running pod a waiting CI job (so npm run demo works)
  --agent-start-ms N    simulated cluster: an agent pod is Running N ms after its Job is created (default 1500)
  --agent-run-ms N      simulated cluster: an agent runs its CI job for N ms, then exits (default 6000)
Environment: the production variables (QUEUES, MIN_AGENTS, MAX_AGENTS, QUEUE_OVERRIDES, JOB_TEMPLATE,
BUILDKITE_WEBHOOK_SECRET, GITHUB_WEBHOOK_SECRET, GITLAB_WEBHOOK_TOKEN, KUBE_NAMESPACE, ...).`;

function int(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value))
    throw new ConfigError(name, `${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** A command-line mistake: printed with the usage, no stack trace. */
class UsageError extends Error {}

function parseOptions() {
  try {
    return parseArgs({
      options: {
        port: { type: 'string' },
        kubeconfig: { type: 'string' },
        embedded: { type: 'boolean', default: false },
        cluster: { type: 'string' },
        'agent-start-ms': { type: 'string' },
        'agent-run-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
  } catch (error) {
    // node:util parseArgs: unknown option, missing value, stray positional argument.
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

async function main(): Promise<void> {
  const { values } = parseOptions();
  if (values.help) {
    console.log(HELP);
    return;
  }
  const port = int('--port', values.port ?? process.env.PORT, 3000);
  if (values.cluster !== undefined && values.cluster !== 'kwok' && values.cluster !== 'embedded')
    throw new UsageError(`--cluster must be kwok or embedded, got ${JSON.stringify(values.cluster)}`);
  if (values.cluster === 'kwok' && (values.embedded || values.kubeconfig))
    throw new UsageError('--cluster kwok cannot be combined with --embedded or --kubeconfig');
  const agentRunMs = int('--agent-run-ms', values['agent-run-ms'], 6000);
  if (values.cluster === 'kwok')
    console.log('Starting the Kubernetes control plane (etcd, kube-apiserver, controllers, kwok)...');
  const kwok = values.cluster === 'kwok' ? await startKwokCluster(agentRunMs) : undefined;
  const embedded = values.embedded || values.cluster === 'embedded';
  const kubeconfig =
    kwok?.kubeconfig ?? (embedded ? undefined : (values.kubeconfig ?? (process.env.KUBECONFIG?.trim() || undefined)));

  if (kubeconfig && !existsSync(kubeconfig)) {
    throw new ConfigError(
      'KUBECONFIG',
      `kubeconfig not found: ${kubeconfig} (from ${values.kubeconfig ? '--kubeconfig' : 'KUBECONFIG'}); use --embedded for the simulated cluster`,
    );
  }
  const term = new Terminal();
  const jobNames = new Map<string, string>();
  const lastReason = new Map<string, string>();
  console.log('Starting the local stack (DynamoDB Local, SQS/S3 emulator, webhook, scaler, build cache)...');
  const stack: LocalStack = await startLocalStack({
    port,
    ...(kubeconfig ? { kubeconfig: path.resolve(kubeconfig) } : {}),
    ...(kwok ? { simulatedCiKubeconfig: kwok.adminKubeconfig } : {}),
    agentStartMs: int('--agent-start-ms', values['agent-start-ms'], 1500),
    agentRunMs,
    onLog: (level, message) => term.line(`${level === 'error' ? 'ERROR' : 'warn '} ${message}`),
    onJobCreated: (j) => jobNames.set(j.queue, j.jobName),
    onDecision: (d, created) => {
      const previous = lastReason.get(d.queue);
      lastReason.set(d.queue, d.reason);
      if (created > 0) {
        term.line(decisionLine(d, created, jobNames.get(d.queue)));
        jobNames.delete(d.queue);
      } else if (d.reason === 'capped' && previous !== 'capped') {
        term.line(decisionLine(d, created));
      }
    },
  });

  const c = stack.scalerConfig;
  // Random per start unless set: a stack exposed through a tunnel is not guarded by a secret
  // anyone could read in this repository. Printed so a real provider can be pointed at it.
  const secretLine = (provider: Provider) => {
    const variable = SECRET_VARIABLES[provider];
    return process.env[variable]?.trim()
      ? `${provider} (from ${variable})`
      : `${provider} "${stack.secrets[provider]}"`;
  };
  const rel = (p: string) => (p.startsWith(PROJECT_ROOT) ? path.relative(PROJECT_ROOT, p) : p);
  console.log(
    [
      '',
      'ci-agent-autoscaler — local stack',
      `  webhooks  POST ${stack.webhookUrl}${PROVIDERS.map((p) => `/webhooks/${p}`).join(' | ')}`,
      `  secrets   ${PROVIDERS.map(secretLine).join(', ')}`,
      `  queues    ${Object.entries(c.queueSettings)
        .map(([q, s]) => `${q} (MIN ${s.minAgents}, MAX ${s.maxAgents}, template ${s.jobTemplate})`)
        .join(', ')}`,
      `  scaler    provisions on each scheduled event (ticks ≤ 250 ms apart), looks at the cluster at least every ${c.pollSeconds} s; namespace ${c.namespace}`,
      `  DynamoDB  ${stack.endpoints.dynamodb}  table ${stack.ledgerTable} (DynamoDB Local, in memory, from infra/aws/ledger-table.yml)`,
      `  SQS       ${stack.endpoints.sqs}  ${stack.eventsQueueUrl} + DLQ (fauxqs, from infra/aws/queues.yml)`,
      kwok
        ? `  cluster   kwok: Kubernetes ${kwok.version} at ${kwok.server} (kube-apiserver, etcd, controllers, kwok nodes), infra/k8s applied to ${c.namespace}; the scaler's kubeconfig ${kwok.kubeconfig}; admin: KUBECONFIG=${kwok.adminKubeconfig} kubectl get jobs,pods -n ${c.namespace}`
        : stack.fakeCluster
          ? `  cluster   embedded simulated cluster: agents Running ${stack.status().agentStartMs} ms after their Job, run ${stack.status().agentRunMs} ms; kubeconfig ${rel(stack.kubeconfigPath)}`
          : `  cluster   REAL cluster from ${stack.kubeconfigPath} — agent Jobs are created there`,
      `  cache     POST ${stack.cache.url}/cache/... (S3 bucket ${stack.cache.bucket} in fauxqs); try:`,
      `            CI_CACHE_URL=${stack.cache.url} CI_CACHE_TOKEN_FILE=${rel(stack.cache.tokenFile)} infra/k8s/cache/ci-cache save my-key some/dir`,
      `  status    GET ${stack.webhookUrl}/local/status (JSON)   ·   try: npm run demo   ·   Ctrl-C stops everything`,
      '',
    ].join('\n'),
  );

  const redraw = setInterval(() => term.status(statusLines(stack.status())), 500);
  term.status(statusLines(stack.status()));

  let stoppingSince = 0;
  const shutdown = (signal: string) => {
    if (stoppingSince > 0) {
      // Ctrl-C reaches npm, tsx and node at once (and tsx relays it): only a later one forces.
      if (Date.now() - stoppingSince < 1500) return;
      console.error(`\n${signal} again: exiting now`);
      process.exit(130); // the 'exit' hooks still kill DynamoDB Local and remove the run folder
    }
    stoppingSince = Date.now();
    clearInterval(redraw);
    term.status(statusLines(stack.status()));
    term.release();
    console.log(`\n${signal}: stopping the scaler, the webhook endpoint and the emulators...`);
    stack
      .stop()
      .then(() => kwok?.stop())
      .then(
        () => {
          console.log('Stopped. Nothing left running.');
          process.exit(0);
        },
        (error: unknown) => {
          console.error(`Stopped with an error: ${String(error)}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGHUP', () => shutdown('SIGHUP'));
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`${error.message}\n\n${HELP}`);
    process.exit(2);
  }
  if (error instanceof ConfigError) console.error(`Configuration error: ${error.message}`);
  else if ((error as NodeJS.ErrnoException)?.code === 'EADDRINUSE')
    console.error(`Port in use: ${(error as Error).message}. Use --port N (or PORT=N), 0 for any free port.`);
  else console.error(error);
  process.exit(1);
});
