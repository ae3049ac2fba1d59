/**
 * The whole product on this machine: `startLocalStack()` starts
 *  - DynamoDB Local (a Java child process) with the ledger table created from infra/aws/ledger-table.yml,
 *  - fauxqs (SQS, in this process) with the events queue and DLQ from infra/aws/queues.yml,
 *  - the REAL webhook function (functions/webhook/app.ts) behind http://127.0.0.1:<port>,
 *  - the REAL scaler loop (functions/scaler/loop.ts `run`, wired by wiring.ts `createPorts`),
 *    re-invoked back to back as EventBridge would invoke it, with a short long-poll,
 *  - and, unless a kubeconfig is given, the embedded simulated cluster: the fake Kubernetes API
 *    server (fake-kube/, also used by the tests) with its job controller on timers, plus the
 *    simulated CI provider (simulated-ci.ts) that sends the started/finished webhooks of the CI
 *    jobs its pods run; with the kwok control plane (`simulatedCiKubeconfig`) the same simulated
 *    CI provider and fake GitLab, reading that cluster's agent pods through its API.
 * Configuration goes through the production loaders (loadWebhookConfig / loadScalerConfig) on the
 * given environment over the local defaults; only the endpoints the stack created are forced.
 *
 * The fake API server lives here, in the tooling, because the local stack embeds it; the tests
 * import it from here (dependencies run one way: test/ -> tools/local -> the deployed code,
 * checked by test/unit/layout.test.ts). tools/local is developer tooling run by tsx, never
 * bundled into a Lambda (serverless-esbuild bundles only the handlers' import graphs).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { sendEvent } from '../../functions/adapters/sqs/events-queue.js';
import { liveAgents, queueOf } from '../../functions/core/agent-job.js';
import type { Decision } from '../../functions/core/decision.js';
import { PROVIDERS, type QueuedJobEvent } from '../../functions/core/job-event.js';
import { routeGitlab } from '../../functions/core/routing.js';
import { run } from '../../functions/scaler/loop.js';
import type { ScalerLog, ScalerPorts } from '../../functions/scaler/ports.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import {
  defaultOf,
  loadScalerConfig,
  loadWebhookConfig,
  type ScalerConfig,
  type WebhookConfig,
} from '../../functions/shared/config.js';
import { createWebhookHandler } from '../../functions/webhook/app.js';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';
import { FakeGitlab } from '../fakes/gitlab.js';
import { FakeKube } from '../fakes/kube/index.js';
import { createLocalCache } from './cache-local.js';
import {
  closeConnections,
  type LocalSecrets,
  localSigningSecrets,
  randomLocalSecrets,
  SECRET_VARIABLES,
} from './ci-webhooks.js';
import { createLedgerTable, startDynamoDbLocal } from './dynamodb-local.js';
import { type HttpEndpoint, startHttpEndpoint } from './http-endpoint.js';
import { type KubeAgentPods, watchAgentPods } from './kube-agent-pods.js';
import { reapOrphanedRuns, writeRunRecord } from './run-files.js';
import { type CiJobRecord, SimulatedCi } from './simulated-ci.js';
import { startSqsLocal } from './sqs-local.js';

type Env = Record<string, string | undefined>;

export interface LocalStackOptions {
  /** Webhook port on 127.0.0.1 (default 0: a free one; the CLI defaults to 3000). */
  readonly port?: number;
  /** Environment read by the config loaders (default process.env), over the local defaults. */
  readonly env?: Env;
  /** A real cluster's kubeconfig; without it the embedded simulated cluster is used. */
  readonly kubeconfig?: string;
  /**
   * With a real cluster whose pods run no agent (the kwok control plane of `--cluster kwok`): the
   * simulated CI provider plays their CI jobs too, reading the agent pods through the Kubernetes
   * API with this kubeconfig (the plane's admin), and GitLab jobs are looked up in the fake GitLab.
   */
  readonly simulatedCiKubeconfig?: string;
  /** Embedded cluster: an agent pod is Running this long after its Job is created (default 1500). */
  readonly agentStartMs?: number;
  /** Embedded cluster: an agent pod runs this long, then exits 0 (default 6000). */
  readonly agentRunMs?: number;
  /** Each scaler invocation's budget (default SCALER_BUDGET_SECONDS, at most 30 s locally). */
  readonly scalerBudgetMs?: number;
  /** Folder for run files (kubeconfig of the embedded cluster); default <project>/.local. */
  readonly localDir?: string;
  /** Warnings and errors of the functions and the stack, one line each. */
  readonly onLog?: (level: 'warn' | 'error', message: string) => void;
  /** Every scaling decision of every tick, per queue (created = agents asked for). */
  readonly onDecision?: (decision: Decision, created: number) => void;
  /** Every agent Job the scaler created. */
  readonly onJobCreated?: (job: JobCreated) => void;
}

export interface JobCreated {
  readonly queue: string;
  readonly jobName: string;
  readonly count: number;
  readonly result: 'created' | 'exists';
  /** Epoch ms the API server answered. */
  readonly at: number;
}

export interface QueueStatus {
  readonly queue: string;
  readonly minAgents: number;
  readonly maxAgents: number;
  /** From the last tick's decision (ledger). */
  pending: number;
  running: number;
  /** Agents in flight now, from the cluster (live agents of our Jobs). */
  inFlight: number;
  /** Highest inFlight observed via the cluster since start. */
  maxInFlight: number;
  jobsCreated: number;
  agentsRequested: number;
  lastDecision?: Decision;
}

export interface LocalStackStatus {
  readonly startedAt: number;
  readonly webhookUrl: string;
  readonly cluster: 'embedded' | 'kubeconfig';
  /** The simulated CI provider gives the agents their CI jobs (embedded cluster, or kwok). */
  readonly simulatedCi: boolean;
  readonly agentStartMs?: number;
  readonly agentRunMs?: number;
  readonly ticks: number;
  /** The build cache's token file for the local ServiceAccount (CI_CACHE_TOKEN_FILE). */
  readonly cacheTokenFile?: string;
  readonly queues: QueueStatus[];
  /** CI jobs seen by the local webhook, with the simulated agents' timings (embedded cluster). */
  readonly ciJobs: CiJobRecord[];
}

export interface LocalStack {
  readonly webhookUrl: string;
  /** The webhook secrets in force: the environment's, else new random ones for this start. */
  readonly secrets: LocalSecrets;
  readonly webhookConfig: WebhookConfig;
  readonly scalerConfig: ScalerConfig;
  readonly eventsQueueUrl: string;
  readonly deadLetterQueueUrl: string;
  readonly ledgerTable: string;
  readonly endpoints: { readonly dynamodb: string; readonly sqs: string };
  /** Embedded cluster only: the fake API server (inspect Jobs and pods). */
  readonly fakeCluster?: FakeKube;
  /** Embedded cluster only: the fake GitLab API the scaler looks GitLab job tags up in. */
  readonly fakeGitlab?: FakeGitlab;
  readonly kubeconfigPath: string;
  /** Process ids of child processes (DynamoDB Local's JVM). */
  readonly childPids: number[];
  /** The build cache: its API under `${webhookUrl}/cache/`, S3 in fauxqs, a local token issuer. */
  readonly cache: { readonly url: string; readonly tokenFile: string; readonly bucket: string };
  status(): LocalStackStatus;
  stop(): Promise<void>;
}

/** The embedded cluster's agent template: simulated agents that take any provider's jobs. */
export const SIMULATED_AGENT_TEMPLATE = path.join(PROJECT_ROOT, 'tools', 'local', 'simulated-agent.yaml');

/** Local defaults, under whatever the environment sets (over the loaders' own defaults). */
export const LOCAL_DEFAULTS: Readonly<Env> = {
  SCALER_POLL_SECONDS: '1',
  SCALER_BUDGET_SECONDS: '30',
  // Finished agent Jobs leave the simulated cluster after a minute (>= the intent lease).
  INTENT_LEASE_SECONDS: '60',
  JOB_TTL_SECONDS_AFTER_FINISHED: '60',
};

/** Variables that reach AWS services the local stack does not emulate: ignored locally. */
const NOT_LOCAL = [
  'GITLAB_API_TOKEN_PARAMETER',
  ...PROVIDERS.map((p) => `${SECRET_VARIABLES[p]}_PARAMETER`),
  'KUBECONFIG_PARAMETER',
  'EKS_CLUSTER_NAME',
  'EKS_CLUSTER_ENDPOINT',
  'EKS_CLUSTER_CA',
] as const;

const AWS_VARS = [
  'AWS_ENDPOINT_URL_SQS',
  'AWS_ENDPOINT_URL_DYNAMODB',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
] as const;

function localEnv(given: Env, forced: Env, warn: (m: string) => void): Env {
  const env: Env = { ...LOCAL_DEFAULTS };
  for (const [k, v] of Object.entries(given)) if (v !== undefined && v.trim() !== '') env[k] = v;
  for (const name of NOT_LOCAL) {
    if (env[name] !== undefined) warn(`${name} is ignored by the local stack (no SSM or EKS here)`);
    delete env[name];
  }
  return { ...env, ...forced };
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const onLog = options.onLog ?? ((level, message) => console.error(`[${level}] ${message}`));
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (error) {
        onLog('warn', `stopping: ${String(error)}`);
      }
    }
  };

  // Configuration through the production loaders, checked before anything starts: a bad variable
  // stops here, naming it, without a JVM started for nothing. The endpoints the stack creates
  // are placeholders in this first pass and forced to the real ones below.
  const given = { ...(options.env ?? process.env) };
  delete given.KUBECONFIG; // the cluster is chosen by options.kubeconfig, not an inherited variable
  // Simulated agents take any provider's job (tools/local/simulated-agent.yaml).
  if (!options.kubeconfig && !given.JOB_TEMPLATE?.trim()) given.JOB_TEMPLATE = SIMULATED_AGENT_TEMPLATE;
  // Webhook secrets the environment does not set are new random ones, never published defaults.
  const secrets = localSigningSecrets(given, randomLocalSecrets());
  for (const [provider, variable] of Object.entries(SECRET_VARIABLES)) {
    if (!given[variable]?.trim()) given[variable] = secrets[provider as keyof LocalSecrets];
  }
  const placeholders = {
    EVENTS_QUEUE_URL: 'http://127.0.0.1:1/000000000000/not-started-yet',
    LEDGER_TABLE: 'not-started-yet',
    KUBECONFIG: options.kubeconfig ?? 'not-started-yet',
  };
  loadWebhookConfig(localEnv(given, placeholders, () => {}));
  loadScalerConfig(localEnv(given, placeholders, () => {}));

  const localDir = options.localDir ?? path.join(PROJECT_ROOT, '.local');
  // A stack killed with SIGKILL ran no exit hook: stop its DynamoDB Local, remove its folder.
  for (const line of reapOrphanedRuns(localDir)) onLog('warn', line);

  try {
    const runDir = path.join(localDir, `run-${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(runDir, { recursive: true });
    // Removed on stop, and on any exit of this process (a second Ctrl-C, an uncaught error).
    const removeRunDir = (): void => rmSync(runDir, { recursive: true, force: true });
    process.once('exit', removeRunDir);
    cleanups.push(() => {
      process.removeListener('exit', removeRunDir);
      removeRunDir();
    });

    const [dynamo, sqs] = await Promise.all([
      startDynamoDbLocal().then((d) => {
        cleanups.push(() => d.stop());
        // Recorded at once, so that a `kill -9` from here on leaves nothing the next start misses.
        writeRunRecord(runDir, { ownerPid: process.pid, childPids: d.pid === undefined ? [] : [d.pid], secrets });
        return d;
      }),
      startSqsLocal().then((s) => {
        cleanups.push(() => s.stop());
        return s;
      }),
    ]);
    const ledgerTable = 'ci-agent-autoscaler-local-ledger';
    await createLedgerTable(dynamo.endpoint, ledgerTable);

    // The product's AWS clients read the standard endpoint variables (functions/shared/aws.ts).
    const saved = Object.fromEntries(AWS_VARS.map((k) => [k, process.env[k]]));
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    delete process.env.AWS_SESSION_TOKEN;
    resetAwsClients();
    cleanups.push(() => {
      resetAwsClients();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });

    const agentStartMs = options.agentStartMs ?? 1500;
    const agentRunMs = options.agentRunMs ?? 6000;
    const startEmbeddedCluster = async (): Promise<FakeKube> => {
      const namespace = localEnv(given, {}, () => {}).KUBE_NAMESPACE ?? defaultOf('KUBE_NAMESPACE');
      // Its temporary kubeconfig goes under the run folder, not the OS temp folder.
      const f = new FakeKube({ namespace, autoRun: { startMs: agentStartMs, runMs: agentRunMs }, dir: runDir });
      await f.start();
      cleanups.push(() => f.stop());
      return f;
    };
    const fake = options.kubeconfig ? undefined : await startEmbeddedCluster();
    const kubeconfigPath = options.kubeconfig ?? fake?.kubeconfigPath ?? '';
    // With the simulated cluster, the made-up GitLab jobs are looked up in a fake GitLab API,
    // tagged for the first queue whose agents take GitLab jobs (the Job Hook has no job tags).
    let fakeGitlab: FakeGitlab | undefined;
    const simulated = fake !== undefined || (options.kubeconfig !== undefined && !!options.simulatedCiKubeconfig);
    if (simulated) {
      const routing = loadWebhookConfig(localEnv(given, placeholders, () => {})).routing;
      const gitlabQueue = routing.queues.find((q) => q.provider === undefined || q.provider === 'gitlab');
      const g = new FakeGitlab(
        'local-gitlab-read-api-token',
        gitlabQueue ? [gitlabQueue.runnerTags[0] ?? gitlabQueue.queue] : undefined,
      );
      await g.start();
      cleanups.push(() => g.stop());
      fakeGitlab = g;
    }
    const env = localEnv(
      given,
      {
        ...(fakeGitlab ? { GITLAB_API_URL: fakeGitlab.url, GITLAB_API_TOKEN: fakeGitlab.token } : {}),
        EVENTS_QUEUE_URL: sqs.eventsQueueUrl,
        LEDGER_TABLE: ledgerTable,
        KUBECONFIG: kubeconfigPath,
      },
      (m) => onLog('warn', m),
    );
    const webhookConfig = loadWebhookConfig(env);
    const scalerConfig = loadScalerConfig(env);

    const queues = new Map<string, QueueStatus>(
      Object.entries(scalerConfig.queueSettings).map(([q, s]) => {
        return [
          q,
          {
            queue: q,
            minAgents: s.minAgents,
            maxAgents: s.maxAgents,
            pending: 0,
            running: 0,
            inFlight: 0,
            maxInFlight: 0,
            jobsCreated: 0,
            agentsRequested: 0,
          },
        ];
      }),
    );

    // --- webhook ---------------------------------------------------------------------------
    let webhookUrl = '';
    let realPods: KubeAgentPods | undefined;
    if (!fake && options.simulatedCiKubeconfig) {
      const pods = watchAgentPods({
        kubeconfig: options.simulatedCiKubeconfig,
        namespace: scalerConfig.namespace,
        onError: (m) => onLog('warn', m),
      });
      cleanups.push(() => pods.stop());
      await pods.ready();
      realPods = pods;
    }
    const runningPods = fake
      ? (): V1Pod[] =>
          fake
            .podSummaries({ namespace: scalerConfig.namespace, phase: 'Running' })
            .map(({ name, annotations }) => ({ metadata: { name, annotations } }))
      : realPods
        ? () => realPods.running()
        : undefined;
    const ci = runningPods
      ? new SimulatedCi({ webhookUrl: () => webhookUrl, secrets, runningPods, onError: (m) => onLog('warn', m) })
      : undefined;
    const quiet = () => {};
    const webhook = createWebhookHandler({
      config: webhookConfig,
      queue: {
        sendEvent: async (event: QueuedJobEvent) => {
          ci?.observe(event, (e) => {
            if (e.queue !== undefined) return e.queue;
            const tags = e.gitlabProjectId === undefined ? undefined : fakeGitlab?.tagsOf(e.gitlabProjectId, e.jobId);
            const routed = tags === undefined ? undefined : routeGitlab(tags, webhookConfig.routing);
            return routed && 'queue' in routed ? routed.queue : undefined;
          });
          return sendEvent(webhookConfig.eventsQueueUrl, event);
        },
      },
      secrets: new SecretStore(webhookConfig.secrets),
      logger: {
        debug: quiet,
        info: quiet,
        warn: (m: unknown, ...rest: unknown[]) =>
          onLog('warn', `webhook: ${String(m)} ${rest.length ? JSON.stringify(rest[0]) : ''}`),
        error: (m: unknown, ...rest: unknown[]) =>
          onLog('error', `webhook: ${String(m)} ${rest.length ? JSON.stringify(rest[0]) : ''}`),
      } as never,
    });

    const startedAt = Date.now();
    let ticks = 0;
    let cacheTokenFile = '';
    const status = (): LocalStackStatus => ({
      startedAt,
      webhookUrl,
      cluster: fake ? 'embedded' : 'kubeconfig',
      simulatedCi: ci !== undefined,
      ...(fake ? { agentStartMs, agentRunMs } : ci && options.agentRunMs !== undefined ? { agentRunMs } : {}),
      ticks,
      ...(cacheTokenFile ? { cacheTokenFile } : {}),
      queues: [...queues.values()].map((q) => ({ ...q })),
      ciJobs: ci?.jobs().map((j) => ({ ...j })) ?? [],
    });

    // --- build cache: S3 from the same fauxqs, entries table in DynamoDB Local -------------
    const cache = await createLocalCache({
      s3Endpoint: sqs.endpoint,
      dynamoEndpoint: dynamo.endpoint,
      bucket: 'ci-agent-autoscaler-local-cache',
      table: 'ci-agent-autoscaler-local-cache',
    });
    cleanups.push(() => cache.stop());
    // A day-long token of ServiceAccount ci-agents/ci-agent for ci-cache (CI_CACHE_TOKEN_FILE).
    cacheTokenFile = path.join(runDir, 'ci-cache-token');
    writeFileSync(cacheTokenFile, await cache.issuer.mint({ expiresInSeconds: 86_400 }), { mode: 0o600 });

    const endpoint: HttpEndpoint = await startHttpEndpoint({
      port: options.port ?? 0,
      handler: (event) => (event.rawPath.startsWith('/cache/') ? cache.http(event) : webhook(event)),
      status,
    });
    cleanups.push(() => endpoint.close());
    cleanups.push(() => closeConnections());
    webhookUrl = endpoint.url;
    writeRunRecord(runDir, {
      ownerPid: process.pid,
      childPids: dynamo.pid === undefined ? [] : [dynamo.pid],
      url: webhookUrl,
      secrets,
    });

    // --- scaler ----------------------------------------------------------------------------
    const scalerLog: ScalerLog = {
      debug: quiet,
      info: quiet,
      warn: (m, extra) => onLog('warn', `scaler: ${m} ${JSON.stringify(extra)}`),
      error: (m, extra) => onLog('error', `scaler: ${m} ${JSON.stringify(extra)}`),
    };
    const wired = await createPorts(scalerConfig, scalerLog);
    const ports: ScalerPorts = {
      ...wired,
      cluster: {
        listAgentJobs: () => wired.cluster.listAgentJobs(),
        // The pods feed the back-off; Secrets carry GitHub just-in-time runner configurations.
        ...(wired.cluster.listAgentPods ? { listAgentPods: wired.cluster.listAgentPods } : {}),
        ...(wired.cluster.createJobSecret ? { createJobSecret: wired.cluster.createJobSecret } : {}),
        // JIT Secrets made before their Job; Jobs whose pods the API server refuses.
        ...(wired.cluster.createSecret ? { createSecret: wired.cluster.createSecret } : {}),
        ...(wired.cluster.ownSecret ? { ownSecret: wired.cluster.ownSecret } : {}),
        ...(wired.cluster.deleteSecret ? { deleteSecret: wired.cluster.deleteSecret } : {}),
        ...(wired.cluster.deleteJob ? { deleteJob: wired.cluster.deleteJob } : {}),
        ...(wired.cluster.listCreateFailures ? { listCreateFailures: wired.cluster.listCreateFailures } : {}),
        createJob: async (job: V1Job) => {
          const result = await wired.cluster.createJob(job);
          const queue = queueOf(job) ?? '?';
          const count = job.spec?.parallelism ?? 0;
          const q = queues.get(queue);
          if (q && result === 'created') {
            q.jobsCreated++;
            q.agentsRequested += count;
          }
          options.onJobCreated?.({ queue, jobName: job.metadata?.name ?? '', count, result, at: Date.now() });
          return result;
        },
      },
      metrics: {
        decision: (decision, created) => {
          if (decision.queue === scalerConfig.queues[0]) ticks++; // one decision per queue per tick
          const q = queues.get(decision.queue);
          if (q) Object.assign(q, { pending: decision.pending, running: decision.running, lastDecision: decision });
          options.onDecision?.(decision, created);
        },
      },
    };
    const settings = scalerSettings(scalerConfig);
    const budgetMs = options.scalerBudgetMs ?? Math.min(30_000, scalerConfig.budgetSeconds * 1000);
    const abort = new AbortController();
    const loop = (async () => {
      while (!abort.signal.aborted) {
        try {
          const reports = await run(ports, settings, {
            budgetMs,
            pollSeconds: scalerConfig.pollSeconds,
            signal: abort.signal,
          });
          for (const r of reports) for (const e of r.errors) onLog('warn', `scaler: ${e}`);
        } catch (error) {
          if (abort.signal.aborted) break;
          onLog('error', `scaler invocation failed: ${error instanceof Error ? error.message : String(error)}`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })();
    // Stop the loop before the emulators it talks to.
    cleanups.push(async () => {
      abort.abort();
      await loop;
    });

    // --- what is in flight, observed via the cluster -------------------------------------------
    const listJobs: () => Promise<V1Job[]> = fake
      ? async () => fake.jobs(scalerConfig.namespace)
      : () => wired.cluster.listAgentJobs();
    let sampling = false;
    const sample = async (): Promise<void> => {
      if (sampling) return;
      sampling = true;
      try {
        const totals = new Map<string, number>();
        for (const job of await listJobs()) {
          const q = queueOf(job);
          if (q) totals.set(q, (totals.get(q) ?? 0) + liveAgents(job));
        }
        for (const q of queues.values()) {
          q.inFlight = totals.get(q.queue) ?? 0;
          q.maxInFlight = Math.max(q.maxInFlight, q.inFlight);
        }
      } catch (error) {
        onLog('warn', `cluster status: ${String(error)}`);
      } finally {
        sampling = false;
      }
    };
    const monitor = setInterval(() => void sample(), fake ? 50 : 2000);
    monitor.unref();
    cleanups.push(() => clearInterval(monitor));

    if (ci) {
      ci.start();
      cleanups.push(() => ci.stop());
    }

    let stopping: Promise<void> | undefined;
    return {
      webhookUrl,
      secrets,
      webhookConfig,
      scalerConfig,
      eventsQueueUrl: sqs.eventsQueueUrl,
      deadLetterQueueUrl: sqs.deadLetterQueueUrl,
      ledgerTable,
      endpoints: { dynamodb: dynamo.endpoint, sqs: sqs.endpoint },
      ...(fake ? { fakeCluster: fake } : {}),
      ...(fakeGitlab ? { fakeGitlab } : {}),
      kubeconfigPath,
      childPids: dynamo.pid === undefined ? [] : [dynamo.pid],
      cache: { url: webhookUrl, tokenFile: cacheTokenFile, bucket: cache.bucket },
      status,
      stop: () => (stopping ??= cleanup()),
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
