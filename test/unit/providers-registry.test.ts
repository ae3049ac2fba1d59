/**
 * Every CI provider is one descriptor in one registry (functions/core/providers/registry.ts,
 * keyed by the Provider union of functions/core/job-event.ts), and every consumer of the
 * registry serves each one: the webhook handler, the built-in templates, the configuration (its
 * secret variables, JOB_TEMPLATE and QUEUE_OVERRIDES), the scaler's per-provider wiring, the local
 * stack's delivery, the deployment (serverless.yml, infra/aws/iam.yml) and the docs
 * (docs/providers.md). The compiler checks the Records; this test checks what it cannot (text,
 * YAML, files, and that each consumer really reads the registry), and shows that each check fails
 * for a provider a consumer lacks. Walk-through: docs/adding-a-provider.md.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BUILTIN_TEMPLATES, clearTemplateCache, loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { PROVIDERS, type Provider, type QueuedJobEvent } from '../../functions/core/job-event.js';
import type { OverrideKey, ProviderDescriptor } from '../../functions/core/providers/descriptor.js';
import { allProviders, descriptorOf, providers } from '../../functions/core/providers/registry.js';
import { SCALER_PROVIDERS } from '../../functions/scaler/providers.js';
import { loadWebhookConfig, VARIABLES } from '../../functions/shared/config.js';
import { createWebhookHandler } from '../../functions/webhook/app.js';
import { delivery, LOCAL_DELIVERY, newCiJob, randomLocalSecrets } from '../../tools/local/ci-webhooks.js';

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

/** A provider the registry does not hold, with a descriptor-like shape: every consumer must miss it. */
const STRANGER = {
  name: 'woodpecker',
  title: 'Woodpecker',
  template: 'woodpecker',
  secretVariable: 'WOODPECKER_WEBHOOK_SECRET',
} as const;

type Facts = Pick<ProviderDescriptor, 'title' | 'template' | 'secretVariable'> & { readonly name: string };

/** The webhook handler answers a signed local delivery to /webhooks/<name> and records its event. */
async function webhookServes(p: Facts): Promise<boolean> {
  const provider = p.name as Provider;
  const secrets = randomLocalSecrets();
  const sent: QueuedJobEvent[] = [];
  const handler = createWebhookHandler({
    config: { queues: ['q'], maxBodyBytes: 1 << 20, buildkiteReplayWindowSeconds: 300 },
    queue: { sendEvent: async (e) => void sent.push(e) },
    secrets: {
      enabled: (name) => name in secrets,
      refreshable: () => false,
      get: async (name) => secrets[name],
      refresh: async () => undefined,
    },
  });
  const known = (PROVIDERS as readonly string[]).includes(p.name);
  // A stranger gets a well-formed request on its own path: only the handler's lookup decides.
  const d = known
    ? delivery(newCiJob(provider, 'q'), 'scheduled', secrets)
    : { path: `/webhooks/${p.name}`, headers: { 'content-type': 'application/json' }, body: '{}' };
  const answer = await handler({
    rawPath: d.path,
    headers: d.headers,
    body: d.body,
    requestContext: { http: { method: 'POST' } },
  });
  return answer.statusCode !== 404 && sent.some((e) => e.provider === p.name);
}

/** The built-in template is listed and loads from infra/k8s/agents/<template>.yaml. */
async function templateLoads(p: Facts): Promise<boolean> {
  if (!BUILTIN_TEMPLATES.includes(p.template)) return false;
  clearTemplateCache();
  const job = await loadTemplate(p.template).catch(() => undefined);
  return (job?.spec?.template?.spec?.containers?.length ?? 0) > 0;
}

/** Its secret variables are declared (README table) and read, plain and from SSM. */
function secretRead(p: Facts): boolean {
  const declared = (name: string) => VARIABLES.some((v) => v.name === name);
  if (!declared(p.secretVariable) || !declared(`${p.secretVariable}_PARAMETER`)) return false;
  const secrets = (env: Record<string, string>) =>
    loadWebhookConfig(webhookEnv(env)).secrets as Readonly<Record<string, unknown>>;
  return (
    JSON.stringify(secrets({ [p.secretVariable]: 's3cret' })[p.name]) ===
      JSON.stringify({ kind: 'value', value: 's3cret' }) &&
    JSON.stringify(secrets({ [`${p.secretVariable}_PARAMETER`]: '/ci/secret' })[p.name]) ===
      JSON.stringify({ kind: 'parameter', name: '/ci/secret' })
  );
}

/** JOB_TEMPLATE=<template> and a queue override naming the provider are accepted, both imply it. */
function configAccepts(p: Facts): boolean {
  try {
    const byTemplate = loadWebhookConfig(webhookEnv({ JOB_TEMPLATE: p.template }));
    const byOverride = loadWebhookConfig(
      webhookEnv({
        JOB_TEMPLATE: 'infra/k8s/agents/custom.yaml',
        QUEUE_OVERRIDES: JSON.stringify({ q: { provider: p.name } }),
      }),
    );
    const variable = (name: string) => VARIABLES.find((v) => v.name === name)?.expected ?? '';
    return (
      byTemplate.routing.queues[0]?.provider === p.name &&
      byOverride.routing.queues[0]?.provider === p.name &&
      variable('JOB_TEMPLATE').includes(p.template) &&
      variable('QUEUE_OVERRIDES').includes(`"${p.name}"`)
    );
  } catch {
    return false;
  }
}

/** The scaler wires it (an entry, possibly empty) and the local stack delivers its webhooks. */
function wiredAndLocal(p: Facts): boolean {
  return Object.hasOwn(SCALER_PROVIDERS, p.name) && Object.hasOwn(LOCAL_DELIVERY, p.name);
}

/** Deployed: a POST route, the secret parameter variable, its IAM grant. */
function deployed(p: Facts): boolean {
  const sls = parse(read('serverless.yml')) as {
    functions: {
      webhook: { environment: Record<string, string>; events: { httpApi?: { method: string; path: string } }[] };
    };
  };
  const webhook = sls.functions.webhook;
  const route = webhook.events.some((e) => e.httpApi?.method === 'POST' && e.httpApi.path === `/webhooks/${p.name}`);
  const param = webhook.environment[`${p.secretVariable}_PARAMETER`];
  return (
    route && /^\$\{param:[A-Za-z]+\}$/.test(param ?? '') && read('infra/aws/iam.yml').includes(`':parameter${param}'`)
  );
}

/** docs/providers.md has its section: a paragraph starting `**<title>**:`. */
function documented(p: Facts): boolean {
  return read('docs/providers.md').includes(`\n**${p.title}**: `);
}

/** Every consumer of the registry, by name; each says whether it serves the provider. */
const CONSUMERS: readonly [string, (p: Facts) => boolean | Promise<boolean>][] = [
  ['webhook handler (functions/webhook/app.ts)', webhookServes],
  ['built-in template (templates.ts, infra/k8s/agents)', templateLoads],
  ['secret variables (shared/config)', secretRead],
  ['JOB_TEMPLATE and QUEUE_OVERRIDES (shared/config)', configAccepts],
  ['scaler wiring and local delivery (scaler/providers.ts, tools/local/ci-webhooks.ts)', wiredAndLocal],
  ['deployment (serverless.yml, infra/aws/iam.yml)', deployed],
  ['docs/providers.md section', documented],
];

async function missingFrom(p: Facts): Promise<string[]> {
  const missing: string[] = [];
  for (const [name, serves] of CONSUMERS) if (!(await serves(p))) missing.push(name);
  return missing;
}

describe('the provider registry', () => {
  it('holds one descriptor per name of the Provider union, filed under its own name, in its order', () => {
    expect(Object.keys(providers)).toEqual([...PROVIDERS]);
    expect(allProviders().map((d) => d.name)).toEqual([...PROVIDERS]);
    expect(PROVIDERS).toEqual(expect.arrayContaining(['buildkite', 'github', 'gitlab']));
  });

  it('gives each provider its own route, template, secret variable and title', () => {
    const distinct = (pick: (d: ProviderDescriptor) => string) => new Set(allProviders().map(pick)).size;
    expect(distinct((d) => d.template)).toBe(PROVIDERS.length);
    expect(distinct((d) => d.secretVariable)).toBe(PROVIDERS.length);
    expect(distinct((d) => d.title)).toBe(PROVIDERS.length);
  });

  it('the scaler wiring and the local delivery are keyed exactly by the union', () => {
    expect(Object.keys(SCALER_PROVIDERS).sort()).toEqual([...PROVIDERS].sort());
    expect(Object.keys(LOCAL_DELIVERY).sort()).toEqual([...PROVIDERS].sort());
  });

  it('each check fails for a provider no consumer knows: it can fail, naming every consumer', async () => {
    expect(await missingFrom(STRANGER)).toEqual(CONSUMERS.map(([name]) => name));
  });

  it('a descriptor whose template, secret variable or title is not wired fails the matching check', async () => {
    const gitlab = descriptorOf('gitlab');
    expect(await missingFrom({ ...gitlab, template: 'woodpecker' })).toEqual([
      'built-in template (templates.ts, infra/k8s/agents)',
      'JOB_TEMPLATE and QUEUE_OVERRIDES (shared/config)',
    ]);
    expect(await missingFrom({ ...gitlab, secretVariable: 'WOODPECKER_WEBHOOK_SECRET' })).toEqual([
      'secret variables (shared/config)',
      'deployment (serverless.yml, infra/aws/iam.yml)',
    ]);
    expect(await missingFrom({ ...gitlab, title: 'Woodpecker' })).toEqual(['docs/providers.md section']);
  });
});

describe.each(PROVIDERS.map((p) => [p] as const))('provider %s', (provider: Provider) => {
  it('is served by every consumer of the registry', async () => {
    expect(await missingFrom(descriptorOf(provider))).toEqual([]);
  });

  it('has override keys QUEUE_OVERRIDES accepts, among them the declaration its routing rule reads', () => {
    const { overrideKeys, agentTags } = descriptorOf(provider);
    expect(overrideKeys).toContain(agentTags);
    const sample: Record<OverrideKey, unknown> = {
      agentTags: ['k=v'],
      runnerLabels: ['x'],
      runnerTags: ['x'],
      runUntagged: true,
      runnerTokenSecret: 'runner-token',
    };
    const override = Object.fromEntries(overrideKeys.map((k) => [k, sample[k]]));
    const config = loadWebhookConfig(webhookEnv({ QUEUE_OVERRIDES: JSON.stringify({ q: { provider, ...override } }) }));
    expect(config.routing.queues[0]?.[agentTags]).toEqual(sample[agentTags]);
  });

  it('has a local delivery (npm start) that its own webhook verifies and parses', async () => {
    const secrets = randomLocalSecrets();
    const { webhook } = descriptorOf(provider);
    const job = newCiJob(provider, 'q');
    const now = Date.now();
    const d = delivery(job, 'scheduled', secrets, {}, now);
    expect(d.path).toBe(`/webhooks/${provider}`);
    const request = {
      headers: Object.fromEntries(Object.entries(d.headers).map(([k, v]) => [k.toLowerCase(), v])),
      body: Buffer.from(d.body),
    };
    const options = { now, replayWindowSeconds: 300 };
    expect(await webhook.verify(request, webhook.secretsFrom(secrets[provider]), options)).toBe(true);
    const result = webhook.parse(request, { queues: ['q'], receivedAt: new Date(now) });
    expect(result).toMatchObject({ kind: 'event', event: { provider, jobId: job.jobId, kind: 'scheduled' } });
  });
});
