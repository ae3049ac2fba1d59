/**
 * Issue 21 point 3: only our jobs. Jobs of other owners/repositories (GitHub), projects (GitLab)
 * or clusters (Buildkite), and `runs-on: {group: X}` jobs (labels: []), are answered 202
 * `ignored` with the reason and never enqueued; a GitLab project_id that is not a positive
 * integer is a 400. Through the webhook handler with the configuration as loaded from the
 * environment (functions/shared/config.ts).
 */
import { describe, expect, it } from 'vitest';
import type { QueuedJobEvent } from '../../functions/core/job-event.js';
import { ConfigError, loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler, type WebhookSecrets } from '../../functions/webhook/app.js';
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

const BASE = {
  EVENTS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/events',
  QUEUES: 'default',
  // A custom template: the queue counts jobs of every provider.
  JOB_TEMPLATE: 'agents/custom.yaml',
  GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
  GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
  BUILDKITE_WEBHOOK_SECRET: BUILDKITE_SECRET,
};

function handlerFor(env: Record<string, string>) {
  const config = loadWebhookConfig({ ...BASE, ...env });
  const sent: QueuedJobEvent[] = [];
  const secrets: WebhookSecrets = {
    enabled: () => true,
    refreshable: () => false,
    get: async (p) => (p === 'github' ? GITHUB_SECRET : p === 'gitlab' ? GITLAB_TOKEN : BUILDKITE_SECRET),
    refresh: async () => undefined,
  };
  const handler = createWebhookHandler({
    config,
    queue: {
      sendEvent: async (e) => {
        sent.push(e);
      },
    },
    secrets,
  });
  return { handler, sent };
}

const queued = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued')!;
const withRepo = (fullName: string, labels = ['self-hosted']) => ({
  ...queued,
  workflow_job: { ...queued.workflow_job, labels },
  repository: { ...queued.repository, full_name: fullName },
});

describe('GitHub: only the jobs of GITHUB_REPOSITORIES, by default GITHUB_RUNNER_OWNER', () => {
  it('a job of another organisation is ignored; one of the runner owner is accepted', async () => {
    const { handler, sent } = handlerFor({ GITHUB_RUNNER_OWNER: 'acme' });
    const other = await handler(githubRequest(withRepo('lineville/elastic-machines-testing')));
    expect(other.statusCode).toBe(202);
    expect(JSON.parse(other.body)).toEqual({
      status: 'ignored',
      reason: 'repository lineville/elastic-machines-testing is not served here (GITHUB_REPOSITORIES)',
    });
    expect(sent).toHaveLength(0);
    const ours = await handler(githubRequest(withRepo('ACME/widgets')));
    expect(JSON.parse(ours.body).status).toBe('accepted');
    expect(sent).toHaveLength(1);
  });

  it('a repository owner serves that repository only; GITHUB_REPOSITORIES lists owners and repositories', async () => {
    const repoOnly = handlerFor({ GITHUB_RUNNER_OWNER: 'acme/widgets' });
    expect(JSON.parse((await repoOnly.handler(githubRequest(withRepo('acme/gadgets')))).body).status).toBe('ignored');
    expect(JSON.parse((await repoOnly.handler(githubRequest(withRepo('acme/widgets')))).body).status).toBe('accepted');
    const listed = handlerFor({ GITHUB_RUNNER_OWNER: 'acme', GITHUB_REPOSITORIES: 'acme, other-org/tools' });
    expect(JSON.parse((await listed.handler(githubRequest(withRepo('other-org/tools')))).body).status).toBe('accepted');
    expect(JSON.parse((await listed.handler(githubRequest(withRepo('other-org/web')))).body).status).toBe('ignored');
  });

  it('runs-on: {group: X} (labels: []) lands in no queue', async () => {
    const { handler, sent } = handlerFor({});
    const answer = await handler(githubRequest(withRepo('acme/widgets', [])));
    expect(answer.statusCode).toBe(202);
    expect(JSON.parse(answer.body)).toEqual({
      status: 'ignored',
      reason: 'runs-on names no label (a runner group only): no queue can be matched',
    });
    expect(sent).toHaveLength(0);
  });

  it('a bad GITHUB_REPOSITORIES stops the function at cold start, naming it', () => {
    expect(() => loadWebhookConfig({ ...BASE, GITHUB_REPOSITORIES: 'a/b/c' })).toThrow(ConfigError);
    expect(() => loadWebhookConfig({ ...BASE, GITHUB_REPOSITORIES: 'a/b/c' })).toThrow(/^GITHUB_REPOSITORIES must be/);
  });
});

describe('GitLab: only the jobs of GITLAB_PROJECTS; project_id a positive integer', () => {
  it('a job of another project is ignored; by id or by full path it is accepted', async () => {
    const { handler, sent } = handlerFor({ GITLAB_PROJECTS: '17, Gitlab-Org/Gitlab-Test' });
    expect(JSON.parse((await handler(gitlabRequest(gitlabJob()))).body).status).toBe('accepted');
    const other = await handler(
      gitlabRequest(gitlabJob({ project_id: 99, project: { id: 99, path_with_namespace: 'someone/else' } })),
    );
    expect(other.statusCode).toBe(202);
    expect(JSON.parse(other.body)).toEqual({
      status: 'ignored',
      reason: 'project someone/else (id 99) is not served here (GITLAB_PROJECTS)',
    });
    expect(JSON.parse((await handler(gitlabRequest(gitlabJob({ project_id: 17, project: {} })))).body).status).toBe(
      'accepted',
    );
    expect(sent.map((e) => e.gitlabProjectId)).toEqual(['380', '17']);
  });

  it.each([
    ['a UUID', '0b8e3a4c-1f2d-4e5f-8a9b-0c1d2e3f4a5b'],
    ['hasOwnProperty', 'hasOwnProperty'],
    ['a numeric string', '380'],
    ['zero', 0],
    ['a negative number', -5],
    ['a fraction', 1.5],
  ])('project_id %s is a 400 and nothing is enqueued', async (_what, projectId) => {
    const { handler, sent } = handlerFor({});
    const answer = await handler(gitlabRequest(gitlabJob({ project_id: projectId })));
    expect(answer.statusCode).toBe(400);
    expect(JSON.parse(answer.body).message ?? answer.body).toMatch(/project_id must be a positive integer/);
    expect(sent).toHaveLength(0);
  });

  it('a bad GITLAB_PROJECTS stops the function at cold start, naming it', () => {
    expect(() => loadWebhookConfig({ ...BASE, GITLAB_PROJECTS: '0' })).toThrow(/^GITLAB_PROJECTS must be/);
    expect(() => loadWebhookConfig({ ...BASE, GITLAB_PROJECTS: 'project-without-group' })).toThrow(
      /^GITLAB_PROJECTS must be/,
    );
  });
});

describe('Buildkite: only the jobs of BUILDKITE_CLUSTERS', () => {
  const cluster = '3a6e4c1b-5d2f-4e8a-9b7c-1d2e3f4a5b6c';
  const payload = (clusterId: string | null) => {
    const p = buildkitePayload('job.scheduled');
    return { ...p, pipeline: { ...(p.pipeline as object), cluster_id: clusterId } };
  };

  it('a job of another cluster, or of a pipeline in no cluster, is ignored', async () => {
    const { handler, sent } = handlerFor({ BUILDKITE_CLUSTERS: cluster.toUpperCase() });
    expect(JSON.parse((await handler(buildkiteRequest(payload(cluster)))).body).status).toBe('accepted');
    const other = await handler(buildkiteRequest(payload('00000000-0000-4000-8000-000000000000')));
    expect(JSON.parse(other.body)).toEqual({
      status: 'ignored',
      reason: 'cluster 00000000-0000-4000-8000-000000000000 is not served here (BUILDKITE_CLUSTERS)',
    });
    expect(JSON.parse((await handler(buildkiteRequest(payload(null)))).body).status).toBe('ignored');
    expect(sent).toHaveLength(1);
  });

  it('unset: every cluster', async () => {
    const { handler } = handlerFor({});
    expect(JSON.parse((await handler(buildkiteRequest(payload(null)))).body).status).toBe('accepted');
  });
});
