/**
 * Issue 21 point 2: a running CI job counts in the queue of the agent that runs it, as the
 * provider's `started` event names that agent (GitHub `runner_name`, GitLab `runner`, Buildkite
 * `job.agent`). Payloads: @octokit/webhooks-examples (workflow_job in_progress), GitLab
 * lib/gitlab/data_builder/build.rb (`runner: {id, description, runner_type, active, is_shared,
 * tags}`, gitlab MR 51633), Buildkite's job webhook (`job.agent` as the REST agent: name,
 * meta_data). Agent names as our code makes them: jobNameFor + the Job controller's pod names,
 * and jit-runners.ts runnerName.
 */
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { runnerName, runnerTag } from '../../functions/adapters/github/jit-runners.js';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { jobNameFor } from '../../functions/core/agent-job.js';
import { isRouted, type QueuedJobEvent } from '../../functions/core/job-event.js';
import { buildkite, buildkiteProvider } from '../../functions/core/providers/buildkite.js';
import { github } from '../../functions/core/providers/github.js';
import { gitlab } from '../../functions/core/providers/gitlab.js';
import { agentQueue } from '../../functions/core/providers/scope.js';
import type { RawRequest } from '../../functions/core/providers/types.js';
import { defaultQueueAgents, type Routing } from '../../functions/core/routing.js';
import type { ClusterPort, ScalerPorts } from '../../functions/scaler/ports.js';
import { provision } from '../../functions/scaler/scaler.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';
import {
  BUILDKITE_SECRET,
  buildkiteJob,
  buildkitePayload,
  GITHUB_SECRET,
  githubSignature,
  gitlabJob,
  workflowJobExamples,
} from '../support/webhook-fixtures.js';

const receivedAt = new Date('2026-11-23T12:00:00.000Z');

function githubRequest(payload: unknown): RawRequest {
  const body = JSON.stringify(payload);
  return {
    body: Buffer.from(body),
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'workflow_job',
      'x-hub-signature-256': githubSignature(GITHUB_SECRET, body),
    },
  };
}

const inProgress = workflowJobExamples().find((e) => e.action === 'in_progress')!;
const queuedExample = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued')!;

function workflowJob(action: 'queued' | 'in_progress', id: number, labels: string[], runner?: string, at = receivedAt) {
  const base = action === 'queued' ? queuedExample : inProgress;
  const time = at.toISOString();
  return {
    ...base,
    action,
    workflow_job: {
      ...base.workflow_job,
      id,
      labels,
      status: action,
      created_at: time,
      started_at: time,
      runner_name: runner ?? null,
      runner_group_name: runner ? 'Default' : null,
      runner_id: runner ? 7 : null,
    },
  };
}

function event(result: ReturnType<typeof github.parse>): QueuedJobEvent {
  if (result.kind !== 'event') throw new Error(`not an event: ${JSON.stringify(result)}`);
  return result.event;
}

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe('a job runs where its agent is: GitHub', () => {
  const queues = ['default', 'gpu'];
  const routing: Routing = {
    queues: queues.map((q) => defaultQueueAgents(q, 'github')),
    buildkiteDefaultQueue: 'default',
  };
  const context = { queues, routing, receivedAt };

  it('QUEUES=default,gpu: a [self-hosted] job taken by the gpu runner, then a gpu job: the gpu job gets an agent at once', async () => {
    let now = Date.parse('2026-11-23T12:00:00Z');
    const jobs: V1Job[] = [];
    const cluster: ClusterPort = {
      listAgentJobs: async () => structuredClone(jobs),
      createJob: async (job) => {
        jobs.push(structuredClone(job));
        return 'created';
      },
    };
    const ledger = new InMemoryLedgerStore();
    const ports: ScalerPorts = {
      events: { receive: async () => [], delete: async () => [] },
      ledger,
      limiter: new InMemoryLimiterStore(),
      cluster,
      jobs: jobFactory({
        namespace: 'ci',
        ttlSecondsAfterFinished: 600,
        activeDeadlineSeconds: 600,
        deployment: 'ledger',
        templateFor: () => template,
      }),
      log: quiet,
      now: () => now,
    };
    const settings = {
      queues,
      limits: { default: { minAgents: 0, maxAgents: 10 }, gpu: { minAgents: 1, maxAgents: 10 } },
      intentLeaseMs: 60_000,
    };
    const apply = async (e: QueuedJobEvent) => {
      if (!isRouted(e)) throw new Error('unrouted');
      await ledger.apply([e], new Date(now));
    };
    // The gpu queue keeps one warm runner.
    await provision(ports, settings);
    const gpuJob = jobs.find((j) => j.metadata?.annotations?.['ci-autoscaler/queue'] === 'gpu');
    expect(gpuJob).toBeDefined();
    const gpuRunner = runnerName(runnerTag('ledger'), 'gpu', gpuJob?.metadata?.name ?? '', 0, 'a1b2');

    // A `runs-on: [self-hosted]` job: every queue's runners could take it; it is counted in default.
    const at = () => ({ ...context, receivedAt: new Date(now) });
    const queued = event(
      github.parse(githubRequest(workflowJob('queued', 1, ['self-hosted'], undefined, new Date(now))), at()),
    );
    expect(queued.queue).toBe('default');
    now += 1_000;
    await apply(queued);
    // The gpu runner takes it before default's agent is up.
    now += 2_000;
    const started = event(
      github.parse(githubRequest(workflowJob('in_progress', 1, ['self-hosted'], gpuRunner, new Date(now))), at()),
    );
    expect(started.queue).toBe('gpu');
    await apply(started);
    await provision(ports, settings);
    const before = jobs.filter((j) => j.metadata?.annotations?.['ci-autoscaler/queue'] === 'gpu').length;

    // A gpu job: the warm gpu runner is busy, so it needs an agent of its own, now.
    now += 1_000;
    await apply(
      event(
        github.parse(githubRequest(workflowJob('queued', 2, ['self-hosted', 'gpu'], undefined, new Date(now))), at()),
      ),
    );
    const report = await provision(ports, settings);
    expect(report.decisions.find((d) => d.queue === 'gpu')?.count).toBe(1);
    expect(jobs.filter((j) => j.metadata?.annotations?.['ci-autoscaler/queue'] === 'gpu')).toHaveLength(before + 1);
  });

  it('a runner that is not ours leaves the job where its labels put it', () => {
    const started = event(
      github.parse(githubRequest(workflowJob('in_progress', 3, ['self-hosted', 'gpu'], 'my runner')), context),
    );
    expect(started.queue).toBe('gpu');
  });
});

describe('a job runs where its agent is: GitLab tag subsets', () => {
  // default's runners carry [docker], gpu's [docker, gpu]: a job tagged [docker] fits both.
  const routing: Routing = {
    queues: [
      { ...defaultQueueAgents('default', 'gitlab'), runnerTags: ['docker'] },
      { ...defaultQueueAgents('gpu', 'gitlab'), runnerTags: ['docker', 'gpu'] },
    ],
    buildkiteDefaultQueue: 'default',
  };
  const context = { queues: ['default', 'gpu'], routing, receivedAt };
  const request = (payload: unknown): RawRequest => ({
    body: Buffer.from(JSON.stringify(payload)),
    headers: { 'x-gitlab-event': 'Job Hook' },
  });
  const runner = (tags: string[], description = 'ci-agents') => ({
    id: 380987,
    description,
    runner_type: 'project_type',
    active: true,
    is_shared: false,
    tags,
  });

  it('running on the gpu runner (its tags) counts in gpu; pending is left to the tag lookup', () => {
    const pending = event(gitlab.parse(request(gitlabJob()), context));
    expect(pending.queue).toBeUndefined();
    const running = event(
      gitlab.parse(
        request(
          gitlabJob({
            build_status: 'running',
            build_started_at: '2026-11-23 10:00:05 UTC',
            runner: runner(['gpu', 'docker']),
          }),
        ),
        context,
      ),
    );
    expect(running.queue).toBe('gpu');
    const onDefault = event(
      gitlab.parse(
        request(
          gitlabJob({
            build_status: 'running',
            build_started_at: '2026-11-23 10:00:05 UTC',
            runner: runner(['docker']),
          }),
        ),
        context,
      ),
    );
    expect(onDefault.queue).toBe('default');
  });

  it('a runner that is none of ours leaves the job to the tag lookup', () => {
    const running = event(
      gitlab.parse(
        request(
          gitlabJob({
            build_status: 'running',
            build_started_at: '2026-11-23 10:00:05 UTC',
            runner: runner(['shell']),
          }),
        ),
        context,
      ),
    );
    expect(running.queue).toBeUndefined();
    expect(running.gitlabProjectId).toBe('380');
  });
});

describe('a job runs where its agent is: overlapping Buildkite tags', () => {
  // Both queues' agents carry queue=default; gpu's also gpu=true. A job asking only queue=default fits both.
  const routing: Routing = {
    queues: [
      { ...defaultQueueAgents('default', 'buildkite'), agentTags: ['queue=default'] },
      { ...defaultQueueAgents('gpu', 'buildkite'), agentTags: ['queue=default', 'gpu=true'] },
    ],
    buildkiteDefaultQueue: 'default',
  };
  const context = { queues: ['default', 'gpu'], routing, receivedAt };
  const request = (payload: unknown): RawRequest => ({
    body: Buffer.from(JSON.stringify(payload)),
    headers: {
      'x-buildkite-event': String((payload as { event: string }).event),
      'x-buildkite-token': BUILDKITE_SECRET,
    },
  });
  const podName = `${jobNameFor('gpu', 'd-1', 'ledger')}-0-x7k2p`;

  it('job.started on a gpu agent (its pod name) counts in gpu', () => {
    const scheduled = event(buildkite.parse(request(buildkitePayload('job.scheduled')), context));
    expect(scheduled.queue).toBe('default');
    const started = event(
      buildkite.parse(
        request(
          buildkitePayload(
            'job.started',
            buildkiteJob({
              state: 'running',
              started_at: '2026-11-23 10:00:05 UTC',
              agent: { id: 'a-1', name: podName, meta_data: ['queue=default', 'gpu=true'] },
            }),
          ),
        ),
        context,
      ),
    );
    expect(started.queue).toBe('gpu');
  });

  it('an agent named otherwise is placed by its meta-data', () => {
    expect(agentQueue(buildkiteProvider, { name: 'my-laptop', tags: ['gpu=true', 'queue=default'] }, routing)).toBe(
      'gpu',
    );
    expect(agentQueue(buildkiteProvider, { name: 'my-laptop', tags: ['queue=other'] }, routing)).toBeUndefined();
  });
});
