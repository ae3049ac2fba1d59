/**
 * Every CI provider named in PROVIDERS (functions/core/job-event.ts) is wired into each place a
 * provider must appear that the compiler cannot check: lists kept by hand, names in text and
 * YAML. A provider added to PROVIDERS and forgotten in one of them fails here, naming the place.
 * Walk-through: docs/adding-a-provider.md.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BUILTIN_TEMPLATES, clearTemplateCache, loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { PROVIDERS, type Provider } from '../../functions/core/job-event.js';
import { PROVIDER_MODULES } from '../../functions/core/providers/index.js';
import { loadWebhookConfig, VARIABLES } from '../../functions/shared/config.js';
import { delivery, newCiJob, randomLocalSecrets, SECRET_VARIABLES } from '../../tools/local/ci-webhooks.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}/${path}`, 'utf8');

/** The least environment the webhook starts with, serving one queue `q`. */
function webhookEnv(extra: Record<string, string>): Record<string, string> {
  return {
    EVENTS_QUEUE_URL: 'http://127.0.0.1:1/queue/events.fifo',
    QUEUES: 'q',
    JOB_TEMPLATE: 'buildkite',
    ...extra,
  };
}

const each = PROVIDERS.map((p) => [p] as const);

describe('the provider list', () => {
  it('names at least the three providers served today, each once', () => {
    expect(new Set(PROVIDERS).size).toBe(PROVIDERS.length);
    expect(PROVIDERS).toEqual(expect.arrayContaining(['buildkite', 'github', 'gitlab']));
  });
});

describe.each(each)('provider %s', (provider: Provider) => {
  it('has a webhook module registered under its own name', () => {
    expect(Object.keys(PROVIDER_MODULES).sort()).toEqual([...PROVIDERS].sort());
    expect(PROVIDER_MODULES[provider].name).toBe(provider);
  });

  it('has a built-in agent Job template that loads (templates.ts BUILTIN_TEMPLATES, infra/k8s/agents)', async () => {
    expect(BUILTIN_TEMPLATES as readonly string[]).toContain(provider);
    clearTemplateCache();
    const job = await loadTemplate(provider);
    expect(job.spec?.template?.spec?.containers?.length).toBeGreaterThan(0);
  });

  it('is accepted as JOB_TEMPLATE and as a queue override provider, and implies the queue provider', () => {
    const byTemplate = loadWebhookConfig(webhookEnv({ JOB_TEMPLATE: provider }));
    expect(byTemplate.routing.queues[0]?.provider).toBe(provider);
    const byOverride = loadWebhookConfig(
      webhookEnv({
        JOB_TEMPLATE: 'infra/k8s/agents/custom.yaml',
        QUEUE_OVERRIDES: JSON.stringify({ q: { provider } }),
      }),
    );
    expect(byOverride.routing.queues[0]?.provider).toBe(provider);
  });

  it('is named in the configuration reference of JOB_TEMPLATE and QUEUE_OVERRIDES', () => {
    const variable = (name: string) => VARIABLES.find((v) => v.name === name);
    expect(variable('JOB_TEMPLATE')?.expected).toContain(provider);
    expect(variable('QUEUE_OVERRIDES')?.expected).toContain(`"${provider}"`);
  });

  it('has a webhook secret read from its variable, plain or from SSM (config.ts, ci-webhooks.ts SECRET_VARIABLES)', () => {
    const name = SECRET_VARIABLES[provider];
    const plain = loadWebhookConfig(webhookEnv({ [name]: 's3cret' }));
    expect(plain.secrets[provider as keyof typeof plain.secrets]).toEqual({ kind: 'value', value: 's3cret' });
    const ssm = loadWebhookConfig(webhookEnv({ [`${name}_PARAMETER`]: '/ci/secret' }));
    expect(ssm.secrets[provider as keyof typeof ssm.secrets]).toEqual({ kind: 'parameter', name: '/ci/secret' });
  });

  it('is deployed: a POST route, the secret parameter variable, the IAM grant (serverless.yml, infra/aws/iam.yml)', () => {
    const sls = parse(read('serverless.yml')) as {
      functions: {
        webhook: { environment: Record<string, string>; events: { httpApi?: { method: string; path: string } }[] };
      };
    };
    const webhook = sls.functions.webhook;
    expect(webhook.events.map((e) => e.httpApi)).toContainEqual({ method: 'POST', path: `/webhooks/${provider}` });
    const param = webhook.environment[`${SECRET_VARIABLES[provider]}_PARAMETER`];
    expect(param).toMatch(/^\$\{param:[A-Za-z]+\}$/);
    expect(read('infra/aws/iam.yml')).toContain(`':parameter${param}'`);
  });

  it('has a local delivery (npm start) that its own webhook module verifies and parses', async () => {
    const secrets = randomLocalSecrets();
    const module = PROVIDER_MODULES[provider];
    const secret = (secrets as unknown as Record<string, string>)[provider];
    expect(secret).toBeTruthy();
    const job = newCiJob(provider, 'q');
    const now = Date.now();
    const d = delivery(job, 'scheduled', secrets, {}, now);
    expect(d.path).toBe(`/webhooks/${provider}`);
    const request = {
      headers: Object.fromEntries(Object.entries(d.headers).map(([k, v]) => [k.toLowerCase(), v])),
      body: Buffer.from(d.body),
    };
    expect(await module.verify(request, module.secretsFrom(secret ?? ''), { now, replayWindowSeconds: 300 })).toBe(
      true,
    );
    const result = module.parse(request, { queues: ['q'], receivedAt: new Date(now) });
    expect(result).toMatchObject({ kind: 'event', event: { provider, jobId: job.jobId, kind: 'scheduled' } });
  });
});
