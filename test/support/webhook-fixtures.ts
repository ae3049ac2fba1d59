/**
 * Payloads shaped as the providers document them, and helpers to sign them, for the webhook
 * tests and the benchmark.
 *  - Buildkite: https://buildkite.com/docs/apis/webhooks/pipelines/job-events (job, build, pipeline, sender)
 *  - GitLab: https://docs.gitlab.com/user/project/integrations/webhook_events/#job-events and
 *    lib/gitlab/data_builder/build.rb (no job tags: only `runner.tags`, null while pending)
 *  - GitHub: the real examples of @octokit/webhooks-examples.
 */
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import type { WebhookEvent } from '../../functions/webhook/app.js';

export const BUILDKITE_SECRET = 'bk-secret-for-tests';
export const GITHUB_SECRET = "It's a Secret to Everybody";
export const GITLAB_TOKEN = 'gl-token-for-tests';

type Json = Record<string, unknown>;

export function buildkiteJob(overrides: Json = {}): Json {
  return {
    id: '0190a4b8-6f2c-4b7e-9a53-1c1e2f3a4b5c',
    graphql_id: 'Sm9iLS0tMDE5MGE0YjgtNmYyYy00YjdlLTlhNTMtMWMxZTJmM2E0YjVj',
    type: 'script',
    name: ':hammer: build',
    step_key: 'build',
    agent_query_rules: ['queue=default'],
    state: 'scheduled',
    web_url: 'https://buildkite.com/acme/widgets/builds/42#0190a4b8-6f2c-4b7e-9a53-1c1e2f3a4b5c',
    command: 'make test',
    soft_failed: false,
    exit_status: null,
    agent: null,
    created_at: '2026-11-23 10:00:00 UTC',
    scheduled_at: '2026-11-23 10:00:01 UTC',
    runnable_at: '2026-11-23 10:00:01 UTC',
    started_at: null,
    finished_at: null,
    retried: false,
    ...overrides,
  };
}

export function buildkitePayload(event: string, job: Json = buildkiteJob()): Json {
  return {
    event,
    job,
    build: {
      id: '0190a4b7-0000-4000-8000-000000000042',
      url: 'https://api.buildkite.com/v2/organizations/acme/pipelines/widgets/builds/42',
      web_url: 'https://buildkite.com/acme/widgets/builds/42',
      number: 42,
      state: 'scheduled',
      branch: 'main',
      commit: 'a1b2c3d4e5f6',
    },
    pipeline: {
      id: '0190a4b6-0000-4000-8000-000000000001',
      slug: 'widgets',
      name: 'Widgets',
      repository: 'git@github.com:acme/widgets.git',
    },
    sender: { id: '8a7693f8-dbae-4783-9137-84090fce9045', name: 'Some Person' },
  };
}

export function gitlabJob(overrides: Json = {}): Json {
  return {
    object_kind: 'build',
    ref: 'main',
    tag: false,
    before_sha: '2293ada6b400935a1378653304eaf6221e0fdb8f',
    sha: '2293ada6b400935a1378653304eaf6221e0fdb8f',
    retries_count: 0,
    build_id: 1977,
    build_name: 'test',
    build_stage: 'test',
    build_status: 'pending',
    build_created_at: '2026-11-23 10:00:00 UTC',
    build_started_at: null,
    build_finished_at: null,
    build_duration: null,
    build_queued_duration: 1.5,
    build_allow_failure: false,
    build_failure_reason: 'unknown_failure',
    pipeline_id: 2366,
    runner: null,
    project_id: 380,
    project_name: 'Gitlab Org / Gitlab Test',
    user: { id: 3, name: 'User', username: 'user', email: 'user@gitlab.com' },
    commit: { id: 2366, name: 'Build pipeline', sha: '2293ada6b400935a1378653304eaf6221e0fdb8f', status: 'pending' },
    repository: { name: 'gitlab_test', homepage: 'http://gitlab.example.com/gitlab-org/gitlab-test' },
    project: {
      id: 380,
      name: 'Gitlab Test',
      web_url: 'http://gitlab.example.com/gitlab-org/gitlab-test',
      path_with_namespace: 'gitlab-org/gitlab-test',
    },
    environment: null,
    ...overrides,
  };
}

export interface WorkflowJobExample {
  readonly action: string;
  readonly workflow_job: Json & { id: number; labels: string[]; status: string; conclusion: string | null };
  readonly repository?: Json;
  readonly [key: string]: unknown;
}

/** Every `workflow_job` example payload of @octokit/webhooks-examples. */
export function workflowJobExamples(): WorkflowJobExample[] {
  const require = createRequire(import.meta.url);
  const all = require('@octokit/webhooks-examples/api.github.com/index.json') as {
    name: string;
    examples: WorkflowJobExample[];
  }[];
  const examples = all.find((e) => e.name === 'workflow_job')?.examples ?? [];
  if (examples.length === 0) throw new Error('no workflow_job examples found');
  return examples;
}

export function githubSignature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function buildkiteSignatureHeader(secret: string, body: string | Buffer, timestamp: number): string {
  const signature = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
  return `timestamp=${timestamp},signature=${signature}`;
}

/** An API Gateway HTTP API (payload v2) event. */
export function httpEvent(options: {
  path: string;
  body?: string;
  headers?: Record<string, string>;
  method?: string;
  base64?: boolean;
}): WebhookEvent {
  const body = options.body ?? '';
  return {
    rawPath: options.path,
    headers: { 'content-type': 'application/json', ...options.headers },
    body: options.base64 ? Buffer.from(body, 'utf8').toString('base64') : body,
    isBase64Encoded: options.base64 ?? false,
    requestContext: { http: { method: options.method ?? 'POST' } },
  };
}

export function githubRequest(payload: unknown, options: { secret?: string; delivery?: string; event?: string } = {}) {
  const body = JSON.stringify(payload);
  return httpEvent({
    path: '/webhooks/github',
    body,
    headers: {
      'X-GitHub-Event': options.event ?? 'workflow_job',
      'X-GitHub-Delivery': options.delivery ?? '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      'X-Hub-Signature-256': githubSignature(options.secret ?? GITHUB_SECRET, body),
    },
  });
}

export function buildkiteRequest(
  payload: Json,
  options: { secret?: string; nowSeconds?: number; token?: boolean } = {},
) {
  const body = JSON.stringify(payload);
  const secret = options.secret ?? BUILDKITE_SECRET;
  const auth: Record<string, string> = options.token
    ? { 'X-Buildkite-Token': secret }
    : {
        'X-Buildkite-Signature': buildkiteSignatureHeader(
          secret,
          body,
          options.nowSeconds ?? Math.floor(Date.now() / 1000),
        ),
      };
  return httpEvent({
    path: '/webhooks/buildkite',
    body,
    headers: { 'X-Buildkite-Event': String(payload.event), ...auth },
  });
}

export function gitlabRequest(payload: Json, options: { token?: string; uuid?: string } = {}) {
  return httpEvent({
    path: '/webhooks/gitlab',
    body: JSON.stringify(payload),
    headers: {
      'X-Gitlab-Event': 'Job Hook',
      'X-Gitlab-Token': options.token ?? GITLAB_TOKEN,
      'X-Gitlab-Event-UUID': options.uuid ?? '13792a34-cac6-4fda-95a8-c58e00a3954e',
    },
  });
}
