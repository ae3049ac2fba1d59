import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadCacheConfig,
  loadScalerConfig,
  loadWebhookConfig,
  VARIABLES,
} from '../../functions/shared/config.js';
import { withTable } from '../tools/write-config-table.js';

const webhookEnv = { EVENTS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/events' };
const scalerEnv = { ...webhookEnv, LEDGER_TABLE: 'ledger', KUBECONFIG: '/tmp/kubeconfig' };
const githubEnv = {
  GITHUB_APP_ID: '12345',
  GITHUB_APP_PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----\nMIIB...\n-----END RSA PRIVATE KEY-----',
  GITHUB_RUNNER_OWNER: 'acme',
};

function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('runs on embedded defaults given only the required variables', () => {
    const c = loadScalerConfig(scalerEnv);
    expect(c.defaults).toMatchObject({ minAgents: 0, maxAgents: 10, jobTemplate: 'buildkite' });
    expect(c.queues).toEqual(['default']);
    expect(c.queueSettings.default).toEqual(c.defaults);
    // What the default queue's agents carry: the provider's defaults for the template's provider.
    expect(c.queueSettings.default?.agents).toEqual({
      queue: 'default',
      provider: 'buildkite',
      agentTags: ['queue=default'],
      runnerLabels: ['self-hosted', 'linux', 'x64', 'default'],
      runnerTags: ['default'],
      runUntagged: false,
    });
    expect(c.routing).toEqual({ queues: [c.queueSettings.default?.agents], buildkiteDefaultQueue: 'default' });
    expect(c.gitlabApi).toEqual({ url: 'https://gitlab.com/api/v4', token: { kind: 'disabled' } });
    expect(c.cluster).toEqual({ kind: 'kubeconfig-file', path: '/tmp/kubeconfig' });
    expect(c.warmPool).toBe('off');
    expect(loadScalerConfig({ ...scalerEnv, WARM_POOL: 'adaptive' }).warmPool).toBe('adaptive');
    expect(loadScalerConfig({ ...scalerEnv, WARM_POOL: 'learned' }).warmPool).toBe('learned');
    const w = loadWebhookConfig(webhookEnv);
    expect(w.maxBodyBytes).toBe(1_048_576);
    expect(w.secrets.github).toEqual({ kind: 'disabled' });
    expect(w.routing).toEqual(c.routing);
  });

  it.each([
    [{ MAX_AGENTS: 'ten' }, 'MAX_AGENTS', 'MAX_AGENTS must be an integer >= MIN_AGENTS and >= 1, got "ten"'],
    [{ MIN_AGENTS: '5', MAX_AGENTS: '3' }, 'MAX_AGENTS', 'got "3"'],
    [{ MIN_AGENTS: '-1' }, 'MIN_AGENTS', 'MIN_AGENTS must be an integer >= 0, got "-1"'],
    [{ LEDGER_TABLE: '' }, 'LEDGER_TABLE', 'LEDGER_TABLE must be a DynamoDB table name, got ""'],
    [{ EVENTS_QUEUE_URL: 'not a url' }, 'EVENTS_QUEUE_URL', 'got "not a url"'],
    [{ QUEUES: 'a,b c' }, 'QUEUES', 'got "a,b c"'],
    [{ QUEUE_OVERRIDES: '{"default":{"maxAgents":"3"}}' }, 'QUEUE_OVERRIDES', 'default.maxAgents'],
    [{ QUEUE_OVERRIDES: '{"gpu":{"maxAgents":3}}' }, 'QUEUE_OVERRIDES', '"gpu"'],
    [{ QUEUE_OVERRIDES: '{' }, 'QUEUE_OVERRIDES', 'valid JSON'],
    [{ QUEUE_OVERRIDES: '{"default":{"agentTags":["os"]}}' }, 'QUEUE_OVERRIDES', 'default.agentTags.0'],
    [{ QUEUE_OVERRIDES: '{"default":{"runnerLabels":[]}}' }, 'QUEUE_OVERRIDES', 'default.runnerLabels'],
    [{ QUEUE_OVERRIDES: '{"default":{"runnerTags":["a,b"]}}' }, 'QUEUE_OVERRIDES', 'default.runnerTags.0'],
    [{ QUEUE_OVERRIDES: '{"default":{"provider":"jenkins"}}' }, 'QUEUE_OVERRIDES', 'default.provider'],
    [{ QUEUE_OVERRIDES: '{"default":{"runUntagged":"yes"}}' }, 'QUEUE_OVERRIDES', 'default.runUntagged'],
    [{ QUEUE_OVERRIDES: '{"default":{"runnerTokenSecret":"Bad_Name"}}' }, 'QUEUE_OVERRIDES', 'runnerTokenSecret'],
    [{ QUEUE_OVERRIDES: '{"default":{"tags":["x"]}}' }, 'QUEUE_OVERRIDES', 'default.tags'],
    [{ BUILDKITE_DEFAULT_QUEUE: 'no spaces' }, 'BUILDKITE_DEFAULT_QUEUE', 'got "no spaces"'],
    [{ GITLAB_API_URL: 'ftp://x' }, 'GITLAB_API_URL', 'got "ftp://x"'],
    [{ GITLAB_API_TOKEN: 'x', GITLAB_API_TOKEN_PARAMETER: '/p' }, 'GITLAB_API_TOKEN_PARAMETER', 'not both'],
    [{ KUBECONFIG: '' }, 'KUBECONFIG', 'got none'],
    [{ EKS_CLUSTER_NAME: 'prod' }, 'KUBECONFIG', 'KUBECONFIG and EKS_CLUSTER_NAME'],
    [{ KUBE_NAMESPACE: 'CI_Agents' }, 'KUBE_NAMESPACE', 'got "CI_Agents"'],
    [
      { KUBECONFIG: '', KUBECONFIG_PARAMETER: 'ci/kubeconfig' },
      'KUBECONFIG_PARAMETER',
      'KUBECONFIG_PARAMETER must be an SSM Parameter Store name (SecureString) starting with "/", holding a kubeconfig, got "ci/kubeconfig"',
    ],
    [{ SCALER_POLL_SECONDS: '0' }, 'SCALER_POLL_SECONDS', 'from 1 to 20'],
    [{ WARM_POOL: 'on' }, 'WARM_POOL', 'WARM_POOL must be one of off, adaptive, learned, got "on"'],
    [
      { JOB_TTL_SECONDS_AFTER_FINISHED: '60' },
      'JOB_TTL_SECONDS_AFTER_FINISHED',
      'an integer >= INTENT_LEASE_SECONDS, got "60"',
    ],
  ])('rejects %j naming %s', (over, variable, message) => {
    const e = configError(() => loadScalerConfig({ ...scalerEnv, ...over }));
    expect(e.variable).toBe(variable);
    expect(e.message).toContain(message);
  });

  it('takes SSM parameter names only as full paths (the IAM policies grant parameter/<name>)', () => {
    const e = configError(() => loadWebhookConfig({ ...webhookEnv, GITHUB_WEBHOOK_SECRET_PARAMETER: 'ci-github' }));
    expect(e.variable).toBe('GITHUB_WEBHOOK_SECRET_PARAMETER');
    expect(e.message).toContain('starting with "/"');
    expect(
      loadWebhookConfig({ ...webhookEnv, GITHUB_WEBHOOK_SECRET_PARAMETER: '/ci/github-secret' }).secrets.github,
    ).toEqual({ kind: 'parameter', name: '/ci/github-secret' });
  });

  it('applies per-queue overrides', () => {
    const c = loadScalerConfig({
      ...scalerEnv,
      QUEUES: 'default, gpu',
      MIN_AGENTS: '1',
      QUEUE_OVERRIDES: '{"gpu":{"minAgents":0,"maxAgents":2,"jobTemplate":"github"}}',
      ...githubEnv,
    });
    expect(c.queueSettings).toMatchObject({
      default: { minAgents: 1, maxAgents: 10, jobTemplate: 'buildkite', agents: { provider: 'buildkite' } },
      gpu: { minAgents: 0, maxAgents: 2, jobTemplate: 'github', agents: { provider: 'github' } },
    });
  });

  it('GitHub App: required together when a queue uses the github template, each named when missing', () => {
    const env = { ...scalerEnv, JOB_TEMPLATE: 'github' };
    expect(configError(() => loadScalerConfig(env)).variable).toBe('GITHUB_APP_ID');
    expect(configError(() => loadScalerConfig(env)).message).toMatch(/queue\(s\) "default" use the github template/);
    const { GITHUB_RUNNER_OWNER: _o, ...noOwner } = githubEnv;
    expect(configError(() => loadScalerConfig({ ...env, ...noOwner })).variable).toBe('GITHUB_RUNNER_OWNER');
    const { GITHUB_APP_PRIVATE_KEY: _k, ...noKey } = githubEnv;
    expect(configError(() => loadScalerConfig({ ...env, ...noKey })).variable).toBe('GITHUB_APP_PRIVATE_KEY_PARAMETER');
    const both = { ...env, ...githubEnv, GITHUB_APP_PRIVATE_KEY_PARAMETER: '/ci/key' };
    expect(configError(() => loadScalerConfig(both)).variable).toBe('GITHUB_APP_PRIVATE_KEY_PARAMETER');
    const bad = configError(() =>
      loadScalerConfig({ ...env, ...githubEnv, GITHUB_APP_PRIVATE_KEY: 'hunter2-not-a-key' }),
    );
    expect(bad.variable).toBe('GITHUB_APP_PRIVATE_KEY');
    expect(bad.message).not.toContain('hunter2');
    expect(configError(() => loadScalerConfig({ ...env, ...githubEnv, GITHUB_RUNNER_OWNER: 'a/b/c' })).variable).toBe(
      'GITHUB_RUNNER_OWNER',
    );
    expect(configError(() => loadScalerConfig({ ...env, ...githubEnv, GITHUB_APP_ID: 'ten' })).variable).toBe(
      'GITHUB_APP_ID',
    );
    // A GitHub variable set without any github queue is checked too (a half-done setup).
    expect(configError(() => loadScalerConfig({ ...scalerEnv, GITHUB_APP_ID: '1' })).variable).toBe(
      'GITHUB_APP_PRIVATE_KEY_PARAMETER',
    );

    const org = loadScalerConfig({ ...env, ...githubEnv });
    expect(org.github).toEqual({
      appId: '12345',
      privateKey: { kind: 'value', value: githubEnv.GITHUB_APP_PRIVATE_KEY },
      owner: { kind: 'org', org: 'acme' },
      runnerGroupId: 1,
      apiUrl: 'https://api.github.com',
    });
    const repo = loadScalerConfig({
      ...env,
      ...noKey,
      GITHUB_APP_PRIVATE_KEY_PARAMETER: '/ci/github-app-key',
      GITHUB_RUNNER_OWNER: 'acme/widgets',
      GITHUB_RUNNER_GROUP_ID: '3',
      GITHUB_API_URL: 'https://ghe.example.com/api/v3/',
    });
    expect(repo.github).toMatchObject({
      privateKey: { kind: 'parameter', name: '/ci/github-app-key' },
      owner: { kind: 'repo', owner: 'acme', repo: 'widgets' },
      runnerGroupId: 3,
      apiUrl: 'https://ghe.example.com/api/v3',
    });
    expect(loadScalerConfig(scalerEnv).github).toBeUndefined();
  });

  it('back-off settings: defaults and bounds', () => {
    expect(loadScalerConfig(scalerEnv).backoff).toEqual({
      baseSeconds: 30,
      maxSeconds: 600,
      unschedulableSeconds: 300,
    });
    expect(
      configError(() =>
        loadScalerConfig({ ...scalerEnv, AGENT_BACKOFF_BASE_SECONDS: '60', AGENT_BACKOFF_MAX_SECONDS: '30' }),
      ).variable,
    ).toBe('AGENT_BACKOFF_MAX_SECONDS');
  });

  it("declares what each queue's agents carry, the same for the webhook and the scaler", () => {
    const env = {
      ...scalerEnv,
      QUEUES: 'linux,gpu,gl,custom',
      JOB_TEMPLATE: 'github',
      BUILDKITE_DEFAULT_QUEUE: 'linux-small',
      GITLAB_API_URL: 'https://gitlab.example.com/api/v4/',
      GITLAB_API_TOKEN: 'glpat-x',
      ...githubEnv,
      QUEUE_OVERRIDES: JSON.stringify({
        gpu: { runnerLabels: ['self-hosted', 'linux', 'gpu'] },
        gl: {
          jobTemplate: 'gitlab',
          runnerTags: ['docker', 'linux'],
          runUntagged: true,
          runnerTokenSecret: 'gl-docker',
        },
        custom: { jobTemplate: 'infra/k8s/agents/mine.yaml', agentTags: ['queue=custom', 'os=linux'] },
      }),
    };
    const c = loadScalerConfig(env);
    expect(c.queueSettings.linux?.agents).toMatchObject({
      provider: 'github',
      runnerLabels: ['self-hosted', 'linux', 'x64', 'linux'],
    });
    expect(c.queueSettings.gpu?.agents.runnerLabels).toEqual(['self-hosted', 'linux', 'gpu']);
    expect(c.queueSettings.gl).toMatchObject({
      runnerTokenSecret: 'gl-docker',
      agents: { provider: 'gitlab', runnerTags: ['docker', 'linux'], runUntagged: true },
    });
    // A custom template and no provider: the queue counts jobs of any provider.
    expect(c.queueSettings.custom?.agents.provider).toBeUndefined();
    expect(c.queueSettings.custom?.agents.agentTags).toEqual(['queue=custom', 'os=linux']);
    expect(c.routing.buildkiteDefaultQueue).toBe('linux-small');
    expect(c.gitlabApi).toEqual({
      url: 'https://gitlab.example.com/api/v4',
      token: { kind: 'value', value: 'glpat-x' },
    });
    expect(loadWebhookConfig(env).routing).toEqual(c.routing);
  });

  it('refuses a secret given both plainly and by parameter', () => {
    const e = configError(() =>
      loadWebhookConfig({ ...webhookEnv, GITLAB_WEBHOOK_TOKEN: 'x', GITLAB_WEBHOOK_TOKEN_PARAMETER: '/ci/gitlab' }),
    );
    expect(e.variable).toBe('GITLAB_WEBHOOK_TOKEN_PARAMETER');
  });

  it('docs/configuration.md table matches the schema (run `npm run docs:config` to fix)', () => {
    const readme = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(withTable(readme)).toBe(readme);
    for (const v of VARIABLES) expect(readme).toContain(`\`${v.name}\``);
  });
});

describe('cache configuration', () => {
  const cacheEnv = {
    CACHE_BUCKET: 'bucket',
    CACHE_TABLE: 'table',
    CACHE_TOKEN_ISSUER: 'https://oidc.eks.eu-west-1.amazonaws.com/id/ABC',
  };

  it('runs on defaults given bucket, table and issuer; without an issuer the cache is off', () => {
    expect(loadCacheConfig(cacheEnv)).toMatchObject({
      tokenAudience: 'ci-cache',
      maxEntryBytes: 10 * 2 ** 30,
      scopeMaxBytes: 100 * 2 ** 30,
      retentionDays: 7,
      partBytes: 8 * 2 ** 20,
    });
    expect(loadCacheConfig({ ...cacheEnv, CACHE_TOKEN_ISSUER: '' }).tokenIssuer).toBeUndefined();
  });

  it.each([
    [{ CACHE_BUCKET: '' }, 'CACHE_BUCKET', 'got ""'],
    [{ CACHE_TOKEN_ISSUER: 'oidc.example' }, 'CACHE_TOKEN_ISSUER', 'got "oidc.example"'],
    [{ CACHE_JWKS_URL: 'ftp://x' }, 'CACHE_JWKS_URL', 'got "ftp://x"'],
    [
      { CACHE_MAX_ENTRY_BYTES: '2000', CACHE_SCOPE_MAX_BYTES: '1000' },
      'CACHE_MAX_ENTRY_BYTES',
      'CACHE_SCOPE_MAX_BYTES',
    ],
    [{ CACHE_RETENTION_DAYS: '0' }, 'CACHE_RETENTION_DAYS', 'from 1 to 365'],
    [{ CACHE_PART_BYTES: '1048576' }, 'CACHE_PART_BYTES', 'from 5242880'],
  ])('rejects %j naming %s', (over, variable, message) => {
    const e = configError(() => loadCacheConfig({ ...cacheEnv, ...over }));
    expect(e.variable).toBe(variable);
    expect(e.message).toContain(message);
  });
});
