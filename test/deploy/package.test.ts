/**
 * `serverless package` runs offline with no credentials, and the CloudFormation template and
 * function packages it produces are what the code needs: resources, runtime, handlers, the
 * environment of each function (against functions/shared/config.ts), redrive, TTL, alarms, and
 * least-privilege IAM (no data-plane action on "*").
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { PROVIDERS } from '../../functions/core/job-event.js';
import {
  type FunctionName,
  loadCacheConfig,
  loadScalerConfig,
  loadWebhookConfig,
  VARIABLES,
} from '../../functions/shared/config.js';
import { PROJECT_ROOT, queueDefinitions, serverlessParams } from '../../infra/aws/definitions.js';
import {
  at,
  effectiveTemplate,
  iamStatements,
  listAt,
  numberAt,
  type Packaged,
  packageService,
  type Resource,
  recordAt,
  resource,
  type Template,
} from './package.js';
import { readZip } from './zip.js';

// Variables deliberately NOT set on Lambda, with the reason.
const NOT_ON_LAMBDA: Record<string, string> = {
  KUBECONFIG: 'a local file path; on Lambda the cluster is reached with EKS_CLUSTER_NAME or KUBECONFIG_PARAMETER',
};
// Set on Lambda although not product configuration.
const RUNTIME_VARIABLES = ['NODE_OPTIONS'];
// provider.environment sets these on every function; the cache function does not read them.
const PROVIDER_WIDE = ['EVENTS_QUEUE_URL', 'QUEUES', 'QUEUE_OVERRIDES', 'JOB_TEMPLATE'];

let ci: Packaged; // stage ci: an EKS cluster and all three webhook secrets configured
let dev: Packaged; // stage dev: serverless.yml defaults and a kubeconfig in SSM (the one required choice)
let ciT: Template;
let devT: Template;

beforeAll(async () => {
  [ci, dev] = await Promise.all([
    packageService('ci'),
    packageService('dev', { params: ['kubeconfigParameter=/ci-agent-autoscaler/dev/kubeconfig'] }),
  ]);
  ciT = effectiveTemplate(ci.template);
  devT = effectiveTemplate(dev.template);
  console.log(`serverless package: ci ${ci.seconds.toFixed(1)} s, dev ${dev.seconds.toFixed(1)} s (in parallel)`);
}, 180_000);

afterAll(() => {
  ci?.cleanup();
  dev?.cleanup();
});

const fn = (t: Template, name: FunctionName) => resource(t, `${name[0]!.toUpperCase()}${name.slice(1)}LambdaFunction`);
const ofType = (t: Template, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);

/** The alarm properties the tests read (parsing also checks their types). */
const Alarm = z.looseObject({
  id: z.string(),
  MetricName: z.string().optional(),
  Dimensions: z.array(z.looseObject({ Name: z.string(), Value: z.unknown() })).optional(),
  ComparisonOperator: z.string(),
  Threshold: z.number(),
  EvaluationPeriods: z.number(),
  DatapointsToAlarm: z.number().optional(),
  AlarmActions: z.array(z.unknown()),
  Metrics: z
    .array(
      z.looseObject({
        Id: z.string(),
        Expression: z.string().optional(),
        ReturnData: z.boolean().optional(),
        MetricStat: z.looseObject({ Metric: z.looseObject({ MetricName: z.string() }) }).optional(),
      }),
    )
    .optional(),
});
type Alarm = z.infer<typeof Alarm>;

/** The function's environment with the stack's Refs replaced by plausible deployed values. */
function deployedEnv(t: Template, name: FunctionName): Record<string, string> {
  const refs: Record<string, string> = {
    EventsQueue: 'https://sqs.us-east-1.amazonaws.com/123456789012/ci-agent-autoscaler-events',
    LedgerTable: 'ci-agent-autoscaler-LedgerTable-ABC',
    CacheBucket: 'ci-agent-autoscaler-ci-cachebucket-abc123',
    CacheTable: 'ci-agent-autoscaler-CacheTable-ABC',
  };
  return Object.fromEntries(
    Object.entries(recordAt(fn(t, name).Properties, 'Environment.Variables')).map(([k, v]) => {
      if (typeof v === 'string') return [k, v];
      const ref = (v as { Ref?: string }).Ref;
      if (!ref || !(ref in refs)) throw new Error(`${k}: unexpected value ${JSON.stringify(v)}`);
      return [k, refs[ref]!];
    }),
  );
}

describe('serverless package (offline, no credentials)', () => {
  // How long packaging takes is printed above (and is a benchmark's business, not a pass/fail).
  it('produces a template and one package per function', () => {
    expect(ci.log).toContain('Service packaged');
    const webhook = readZip(join(ci.out, 'webhook.zip')).map((e) => e.name);
    const scaler = readZip(join(ci.out, 'scaler.zip')).map((e) => e.name);
    expect(webhook).toEqual(
      expect.arrayContaining(['functions/webhook/handler.mjs', 'functions/webhook/handler.mjs.map']),
    );
    // The scaler reads the agent Job templates at run time, relative to LAMBDA_TASK_ROOT.
    expect(scaler).toEqual(
      expect.arrayContaining([
        'functions/scaler/handler.mjs',
        'infra/k8s/agents/buildkite.yaml',
        'infra/k8s/agents/github.yaml',
        'infra/k8s/agents/gitlab.yaml',
      ]),
    );
    // The webhook stays small (issue 2: <= 400 KB) and free of the Kubernetes client; the SSM
    // client is left to the runtime's AWS SDK (esbuild exclude) and loaded on first use.
    const bundle = readZip(join(ci.out, 'webhook.zip')).find((e) => e.name === 'functions/webhook/handler.mjs')!;
    expect(bundle.size).toBeLessThanOrEqual(400 * 1024);
    const code = bundle.read().toString('utf8');
    expect(code).not.toContain('@kubernetes/client-node');
    expect(code).toContain('import("@aws-sdk/client-ssm")');
    const cache = readZip(join(ci.out, 'cache.zip')).map((e) => e.name);
    expect(cache).toEqual(expect.arrayContaining(['functions/cache/handler.mjs']));
    // Nothing else: no TypeScript sources, tests or node_modules in a function package.
    for (const name of [...webhook, ...scaler, ...cache])
      expect(name).toMatch(
        /^(functions\/(webhook|scaler|cache)\/handler\.mjs(\.map)?|infra\/k8s\/agents\/[\w-]+\.yaml)$/,
      );
  });

  it('runs every function on nodejs24.x, arm64, with ESM handlers', () => {
    for (const name of ['webhook', 'scaler', 'cache'] as const) {
      const p = fn(ciT, name).Properties;
      expect(p.Runtime).toBe('nodejs24.x');
      expect(p.Architectures).toEqual(['arm64']);
      expect(p.Handler).toBe(`functions/${name}/handler.handler`);
    }
    const scaler = fn(ciT, 'scaler').Properties;
    // The loop ticks for the whole budget and keeps 8 s of the timeout for its last tick.
    expect(Number(deployedEnv(ciT, 'scaler').SCALER_BUDGET_SECONDS) + 8).toBeLessThanOrEqual(
      numberAt(scaler, 'Timeout'),
    );
    expect(fn(ciT, 'webhook').Properties.Timeout).toBeLessThanOrEqual(10);
    // No reserved concurrency: the limiter makes overlapping invocations safe.
    expect(scaler.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('bundles that Node can import (the ESM bundle of CommonJS dependencies works)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lambda-task-root-'));
    try {
      for (const name of ['webhook', 'scaler', 'cache'] as const) {
        for (const entry of readZip(join(ci.out, `${name}.zip`))) {
          const file = join(root, entry.name);
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, entry.read());
        }
        const env = {
          PATH: process.env.PATH ?? '',
          ...deployedEnv(ciT, name),
          LAMBDA_TASK_ROOT: root,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'test',
          AWS_SECRET_ACCESS_KEY: 'test',
        };
        const url = pathToFileURL(join(root, `functions/${name}/handler.mjs`)).href;
        const { stdout } = await promisify(execFile)(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `const m = await import(${JSON.stringify(url)}); process.stdout.write(typeof m.handler);`,
          ],
          { env, timeout: 30_000 },
        );
        expect(stdout, name).toBe('function');
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('serves the three webhook routes on an HTTP API (payload v2) and runs the scaler every minute', () => {
    const routes = ofType(ciT, 'AWS::ApiGatewayV2::Route')
      .map(([, r]) => r.Properties.RouteKey)
      .sort();
    // One webhook route per provider of the registry (functions/core/providers/registry.ts).
    expect(routes).toEqual(['POST /cache/{proxy+}', ...PROVIDERS.map((p) => `POST /webhooks/${p}`)].sort());
    const [, integration] = ofType(ciT, 'AWS::ApiGatewayV2::Integration')[0]!;
    expect(integration.Properties.PayloadFormatVersion).toBe('2.0');
    const all = ofType(ciT, 'AWS::Events::Rule').map(([, r]) => r.Properties);
    const target = (name: string) => (r: Record<string, unknown>) => at(r, 'Targets.0.Arn.Fn::GetAtt.0') === name;
    // One schedule for the scaler, one (the daily sweep) for the cache.
    expect(all).toHaveLength(2);
    const rules = all.filter(target('ScalerLambdaFunction'));
    expect(rules).toHaveLength(1);
    expect(rules[0]!.ScheduleExpression).toBe('rate(1 minute)');
    expect(rules[0]!.State).toBe('ENABLED');
    expect(at(rules[0], 'Targets.0.Arn')).toEqual({ 'Fn::GetAtt': ['ScalerLambdaFunction', 'Arn'] });
    expect(all.filter(target('CacheLambdaFunction')).map((r) => r.ScheduleExpression)).toEqual(['rate(1 day)']);
  });
});

describe('function environment == functions/shared/config.ts', () => {
  for (const name of ['webhook', 'scaler', 'cache'] as const) {
    it(`${name}: every variable it reads, none it does not, secrets by SSM name only`, () => {
      const env = recordAt(fn(devT, name).Properties, 'Environment.Variables');
      const mine = VARIABLES.filter((v) => (v.functions as readonly string[]).includes(name));
      const expected = mine
        .filter((v) => !('secret' in v && v.secret) && !(v.name in NOT_ON_LAMBDA))
        .map((v) => v.name);
      expect(
        Object.keys(env)
          .filter((k) => !RUNTIME_VARIABLES.includes(k) && !(name === 'cache' && PROVIDER_WIDE.includes(k)))
          .sort(),
      ).toEqual([...expected].sort());
      // Stage defaults equal the config module's documented defaults.
      for (const v of mine) {
        if ('default' in v && v.default !== undefined && v.name in env) expect(env[v.name], v.name).toBe(v.default);
      }
    });
  }

  it('the deployed environment passes the config validation of each function', () => {
    const webhook = loadWebhookConfig(deployedEnv(ciT, 'webhook'));
    expect(webhook.secrets.buildkite).toEqual({
      kind: 'parameter',
      name: '/ci-agent-autoscaler/ci/buildkite-webhook-secret',
    });
    expect(webhook.secrets.github.kind).toBe('parameter');
    expect(webhook.secrets.gitlab.kind).toBe('parameter');
    const scaler = loadScalerConfig(deployedEnv(ciT, 'scaler'));
    expect(scaler.cluster).toEqual({ kind: 'eks', clusterName: 'ci-cluster' });
    expect(scaler.namespace).toBe('ci-agents');
    expect(scaler.github).toMatchObject({
      appId: '123456',
      privateKey: { kind: 'parameter', name: '/ci-agent-autoscaler/ci/github-app-private-key' },
      owner: { kind: 'org', org: 'acme' },
    });
    expect(scaler.gitlabApi).toEqual({
      url: 'https://gitlab.com/api/v4',
      token: { kind: 'parameter', name: '/ci-agent-autoscaler/ci/gitlab-api-token' },
    });
    // Defaults only (stage dev): every provider is off (404), never open.
    const cache = loadCacheConfig(deployedEnv(ciT, 'cache'));
    expect(cache).toMatchObject({
      bucket: 'ci-agent-autoscaler-ci-cachebucket-abc123',
      table: 'ci-agent-autoscaler-CacheTable-ABC',
      tokenIssuer: 'https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE',
      tokenAudience: 'ci-cache',
    });
    // Defaults only: no issuer, the cache is off (404) rather than open.
    expect(loadCacheConfig(deployedEnv(devT, 'cache')).tokenIssuer).toBeUndefined();
    const devWebhook = loadWebhookConfig(deployedEnv(devT, 'webhook'));
    expect(Object.values(devWebhook.secrets).map((s) => s.kind)).toEqual(['disabled', 'disabled', 'disabled']);
  });
});

describe('resources', () => {
  it('events queue with a redrive policy to a 14-day dead-letter queue, visibility above the scaler timeout', () => {
    const queue = resource(ciT, 'EventsQueue').Properties;
    const dlq = resource(ciT, 'EventsDeadLetterQueue').Properties;
    expect(queue.RedrivePolicy).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': ['EventsDeadLetterQueue', 'Arn'] },
      maxReceiveCount: 5,
    });
    expect(dlq.MessageRetentionPeriod).toBe(1_209_600);
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(numberAt(fn(ciT, 'scaler').Properties, 'Timeout') + 10);
    expect(queue.SqsManagedSseEnabled).toBe(true);
    // The local stack reads the same definitions (infra/aws/definitions.ts).
    expect(queueDefinitions('ci')).toEqual({
      events: {
        visibilityTimeoutSeconds: queue.VisibilityTimeout,
        messageRetentionSeconds: queue.MessageRetentionPeriod,
        maxReceiveCount: 5,
      },
      deadLetter: { messageRetentionSeconds: 1_209_600 },
    });
  });

  it('the ledger table: pk/sk, on-demand, TTL on expiresAt, point-in-time recovery, GSI open-jobs', () => {
    const table = resource(ciT, 'LedgerTable').Properties;
    expect(table.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(table.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
    expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: 'open-jobs',
        KeySchema: [
          { AttributeName: 'openKey', KeyType: 'HASH' },
          { AttributeName: 'openAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ]);
  });

  it('log groups with retention for every function', () => {
    for (const id of ['WebhookLogGroup', 'ScalerLogGroup', 'CacheLogGroup'])
      expect(resource(ciT, id).Properties.RetentionInDays).toBe(30);
  });

  it('alarms: dead letters, oldest event age, scaler errors, limiter at MAX per queue; all notify the topic', () => {
    const alarms = ofType(ciT, 'AWS::CloudWatch::Alarm').map(([id, r]) => Alarm.parse({ id, ...r.Properties }));
    const find = (pred: (a: Alarm) => boolean) => {
      const found = alarms.filter(pred);
      expect(found).toHaveLength(1);
      return found[0]!;
    };
    const dlq = find((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(dlq.Dimensions![0]!.Value).toEqual({ 'Fn::GetAtt': ['EventsDeadLetterQueue', 'QueueName'] });
    expect([dlq.ComparisonOperator, dlq.Threshold]).toEqual(['GreaterThanThreshold', 0]);
    const age = find((a) => a.MetricName === 'ApproximateAgeOfOldestMessage');
    expect(age.Dimensions![0]!.Value).toEqual({ 'Fn::GetAtt': ['EventsQueue', 'QueueName'] });
    expect(age.Threshold).toBe(300);
    const errors = find((a) => a.MetricName === 'Errors' && at(a.Dimensions, '0.Value.Ref') === 'ScalerLambdaFunction');
    expect([errors.ComparisonOperator, errors.Threshold]).toEqual(['GreaterThanThreshold', 0]);
    const limiter = find((a) => Array.isArray(a.Metrics));
    const stat = (id: string) => limiter.Metrics!.find((m) => m.Id === id)!.MetricStat!;
    expect(stat('inflight').Metric).toEqual({
      Namespace: 'CiAgentAutoscaler',
      MetricName: 'InFlight',
      Dimensions: [{ Name: 'Queue', Value: 'default' }],
    });
    expect(stat('max').Metric.MetricName).toBe('MaxAgents');
    expect(limiter.Metrics!.find((m) => m.ReturnData)!.Expression).toBe('IF(inflight >= max, 1, 0)');
    expect([limiter.EvaluationPeriods, limiter.DatapointsToAlarm, limiter.Threshold]).toEqual([15, 15, 1]);
    const startFailures = find((a) => a.MetricName === 'AgentStartFailures');
    expect(startFailures).toMatchObject({
      Namespace: 'CiAgentAutoscaler',
      Dimensions: [{ Name: 'service', Value: 'scaler' }],
      Statistic: 'Sum',
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
    });
    for (const a of alarms) expect(a.AlarmActions, a.id).toEqual([{ Ref: 'AlarmTopic' }]);
    // The e-mail subscription exists only when alarmEmail is set.
    expect(ciT.Resources.AlarmEmailSubscription).toBeUndefined();
  });

  it('one limiter alarm per configured queue (monitoring.cjs)', () => {
    const { monitoringResources } = createRequire(import.meta.url)(join(PROJECT_ROOT, 'infra/aws/monitoring.cjs'));
    const { Resources } = monitoringResources('default, linux-arm64,default,gpu.large', 5);
    const alarms = Object.entries(Resources as Record<string, Resource>).filter(
      ([, r]) => r.Type === 'AWS::CloudWatch::Alarm',
    );
    expect(
      alarms.map(([, r]) => String(at(r.Properties, 'Metrics.0.MetricStat.Metric.Dimensions.0.Value'))).sort(),
    ).toEqual(['default', 'gpu.large', 'linux-arm64']);
    for (const [id] of alarms) expect(id).toMatch(/^[A-Za-z0-9]+$/);
    expect(() => monitoringResources('default', 0)).toThrow(/limiterAtMaxAlarmMinutes/);
  });

  it('a dashboard of pending, running, in flight, created and stopped per tick and decision latency', () => {
    const [, dashboard] = ofType(ciT, 'AWS::CloudWatch::Dashboard')[0]!;
    const [sep, parts] = listAt(dashboard.Properties, 'DashboardBody.Fn::Join');
    expect(sep).toBe('');
    const body: unknown = JSON.parse(
      listAt(parts, '')
        .map((p) => (typeof p === 'string' ? p : 'X'))
        .join(''),
    );
    const metrics = listAt(body, 'widgets').flatMap((w) =>
      listAt(w, 'properties.metrics').map((m) => `${String(at(m, '0'))}/${String(at(m, '1'))}`),
    );
    for (const m of [
      'Pending',
      'Running',
      'InFlight',
      'MaxAgents',
      'AgentsRequested',
      'AgentsStopped',
      'DecisionLatencyMs',
    ]) {
      expect(metrics).toContain(`CiAgentAutoscaler/${m}`);
    }
  });

  it('the EKS access entry maps the scaler role to the Kubernetes group of infra/k8s/rbac.yaml, only with a cluster', () => {
    expect(resource(ciT, 'ScalerAccessEntry').Properties).toEqual({
      ClusterName: 'ci-cluster',
      PrincipalArn: { 'Fn::GetAtt': ['ScalerRole', 'Arn'] },
      Type: 'STANDARD',
      KubernetesGroups: ['ci-agent-autoscaler'],
    });
    expect(devT.Resources.ScalerAccessEntry).toBeUndefined();
  });

  it('every tunable in serverless.yml params has a default', () => {
    const params = serverlessParams();
    for (const [k, v] of Object.entries(params)) expect(v, k).not.toBeNull();
  });
});

describe('IAM: least privilege per function', () => {
  const DATA_PLANE = /^(sqs|dynamodb|ssm|eks|kms|s3|secretsmanager|sns|logs|sts):/;
  const sortedActions = (t: Template, role: string) =>
    [
      ...new Set(
        iamStatements(t)
          .filter((s) => s.role === role && s.Effect === 'Allow')
          .flatMap((s) => s.actions),
      ),
    ].sort();

  it('no statement grants any action on Resource "*" or with a wildcard action', () => {
    for (const t of [ciT, devT]) {
      const statements = iamStatements(t).filter((s) => s.Effect === 'Allow');
      expect(statements.length).toBeGreaterThan(0);
      for (const s of statements) {
        for (const a of s.actions) {
          expect(a, `${s.role} ${s.Sid}`).not.toContain('*');
          expect(a, `${s.role} ${s.Sid}`).toMatch(DATA_PLANE);
        }
        expect(s.resources.length, `${s.role} ${s.Sid}`).toBeGreaterThan(0);
        for (const r of s.resources) expect(r, `${s.role} ${s.Sid}`).not.toBe('*');
      }
    }
  });

  it('each function runs with its own role; no shared default role', () => {
    expect(fn(ciT, 'webhook').Properties.Role).toEqual({ 'Fn::GetAtt': ['WebhookRole', 'Arn'] });
    expect(fn(ciT, 'scaler').Properties.Role).toEqual({ 'Fn::GetAtt': ['ScalerRole', 'Arn'] });
    expect(fn(ciT, 'cache').Properties.Role).toEqual({ 'Fn::GetAtt': ['CacheRole', 'Arn'] });
    expect(ciT.Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it('webhook: send to its queue, read its own configured SSM parameters', () => {
    expect(sortedActions(ciT, 'WebhookRole')).toEqual([
      'kms:Decrypt',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'sqs:SendMessage',
      'ssm:GetParameter',
    ]);
    const statements = iamStatements(ciT).filter((s) => s.role === 'WebhookRole');
    expect(statements.find((s) => s.actions.includes('sqs:SendMessage'))!.resources).toEqual([
      { 'Fn::GetAtt': ['EventsQueue', 'Arn'] },
    ]);
    const ssm = statements
      .filter((s) => s.actions.includes('ssm:GetParameter'))
      .map((s) => JSON.stringify(s.resources));
    expect(ssm).toHaveLength(3);
    for (const p of ['buildkite-webhook-secret', 'github-webhook-secret', 'gitlab-webhook-token']) {
      expect(ssm.some((r) => r.includes(`:parameter/ci-agent-autoscaler/ci/${p}`))).toBe(true);
    }
    const kms = statements.find((s) => s.actions.includes('kms:Decrypt'))!;
    expect(JSON.stringify(kms.Condition)).toContain('kms:ViaService');
    // Without configured parameters, no SSM or KMS permission at all.
    expect(sortedActions(devT, 'WebhookRole')).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'sqs:SendMessage',
    ]);
  });

  it('scaler: drain its queue, read/write its table and indexes, describe its cluster', () => {
    expect(sortedActions(ciT, 'ScalerRole')).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:ConditionCheckItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
      'eks:DescribeCluster',
      'kms:Decrypt',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:GetQueueAttributes',
      'sqs:ReceiveMessage',
      'ssm:GetParameter',
    ]);
    const statements = iamStatements(ciT).filter((s) => s.role === 'ScalerRole');
    // The GitLab job-tags lookup token and the GitHub App key: each its one parameter, decrypted
    // only through SSM.
    const ssm = statements
      .filter((s) => s.actions.includes('ssm:GetParameter'))
      .map((s) => JSON.stringify(s.resources));
    expect(ssm).toEqual([
      expect.stringContaining(':parameter/ci-agent-autoscaler/ci/gitlab-api-token'),
      expect.stringContaining(':parameter/ci-agent-autoscaler/ci/github-app-private-key'),
    ]);
    expect(JSON.stringify(statements.find((s) => s.actions.includes('kms:Decrypt'))?.Condition)).toContain(
      'kms:ViaService',
    );
    const on = (action: string) => JSON.stringify(statements.find((s) => s.actions.includes(action))!.resources);
    expect(on('sqs:ReceiveMessage')).toBe(JSON.stringify([{ 'Fn::GetAtt': ['EventsQueue', 'Arn'] }]));
    expect(on('dynamodb:Query')).toContain('LedgerTable');
    expect(on('dynamodb:Query')).toContain('/index/*');
    expect(on('eks:DescribeCluster')).toContain(':cluster/ci-cluster');
    for (const kms of statements.filter((s) => s.actions.includes('kms:Decrypt')))
      expect(JSON.stringify(kms.Condition)).toContain('kms:ViaService');
    // Without a GitHub App key parameter (stage dev), no statement for it.
    expect(
      iamStatements(devT)
        .filter((s) => s.role === 'ScalerRole')
        .map((s) => s.Sid),
    ).not.toContain('ReadGithubAppKey');
    // Log permissions only on the function's own log group.
    expect(on('logs:PutLogEvents')).toContain(':log-group:/aws/lambda/ci-agent-autoscaler-ci-scaler:*');
    // A cluster reached with a kubeconfig: no EKS permission.
    expect(sortedActions(devT, 'ScalerRole')).not.toContain('eks:DescribeCluster');
    // No GitLab API token configured: no permission on it.
    expect(JSON.stringify(iamStatements(devT).filter((s) => s.role === 'ScalerRole'))).not.toContain(
      'gitlab-api-token',
    );
  });
});

describe('build cache (infra/aws/cache.yml)', () => {
  it('the bucket: encrypted, public access blocked, TLS only, incomplete multipart uploads aborted after a day', () => {
    const bucket = resource(ciT, 'CacheBucket').Properties;
    expect(
      at(bucket, 'BucketEncryption.ServerSideEncryptionConfiguration.0.ServerSideEncryptionByDefault.SSEAlgorithm'),
    ).toBe('AES256');
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(listAt(bucket, 'LifecycleConfiguration.Rules')).toContainEqual(
      expect.objectContaining({ Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
    );
    const policy = recordAt(resource(ciT, 'CacheBucketTlsOnly').Properties, 'PolicyDocument.Statement.0');
    expect([policy.Effect, policy.Condition]).toEqual(['Deny', { Bool: { 'aws:SecureTransport': 'false' } }]);
  });

  it('the entries table: scope/key, on-demand, TTL on expiresAt, encrypted', () => {
    const table = resource(ciT, 'CacheTable').Properties;
    expect(table.KeySchema).toEqual([
      { AttributeName: 'scope', KeyType: 'HASH' },
      { AttributeName: 'key', KeyType: 'RANGE' },
    ]);
    expect(table.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
    expect(table.SSESpecification).toEqual({ SSEEnabled: true });
  });

  it('IAM: the cache function touches only its bucket objects and its table items', () => {
    const statements = iamStatements(ciT).filter((s) => s.role === 'CacheRole' && s.Effect === 'Allow');
    const actions = [...new Set(statements.flatMap((s) => s.actions))].sort();
    expect(actions).toEqual([
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:Scan',
      'dynamodb:UpdateItem',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      's3:AbortMultipartUpload',
      's3:DeleteObject',
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
    ]);
    for (const s of statements) {
      const on = JSON.stringify(s.resources);
      if (s.actions.some((a) => a.startsWith('dynamodb:'))) {
        expect(s.resources).toEqual([{ 'Fn::GetAtt': ['CacheTable', 'Arn'] }]);
      } else if (s.actions.includes('s3:ListBucket')) {
        expect(s.actions).toEqual(['s3:ListBucket']);
        expect(s.resources).toEqual([{ 'Fn::GetAtt': ['CacheBucket', 'Arn'] }]);
      } else if (s.actions.some((a) => a.startsWith('s3:'))) {
        expect(s.resources).toEqual([{ 'Fn::Join': ['', [{ 'Fn::GetAtt': ['CacheBucket', 'Arn'] }, '/*']] }]);
      } else {
        expect(on).toContain(':log-group:/aws/lambda/ci-agent-autoscaler-ci-cache:*');
      }
    }
    // No other role may touch the cache.
    for (const s of iamStatements(ciT).filter((x) => x.role !== 'CacheRole')) {
      expect(JSON.stringify(s.resources)).not.toMatch(/Cache(Bucket|Table)/);
    }
  });

  it('an alarm on the cache function errors notifies the topic', () => {
    const alarm = resource(ciT, 'CacheErrorsAlarm').Properties;
    expect(alarm.MetricName).toBe('Errors');
    expect(at(alarm, 'Dimensions.0.Value')).toEqual({ Ref: 'CacheLambdaFunction' });
    expect([alarm.ComparisonOperator, alarm.Threshold]).toEqual(['GreaterThanThreshold', 0]);
    expect(alarm.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
  });
});
