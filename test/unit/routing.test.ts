/**
 * The providers' own matching rules (functions/core/routing.ts), driven by real payloads:
 * @octokit/webhooks-examples for GitHub, the Buildkite job fields documented for job events
 * (test/support/webhook-fixtures.ts), GitLab tag_lists as the Jobs API returns them.
 */
import { describe, expect, it } from 'vitest';
import {
  defaultQueueAgents,
  defaultRouting,
  globMatch,
  type QueueAgents,
  type Routing,
  routeBuildkite,
  routeGithub,
  routeGitlab,
  unmetBuildkiteRule,
} from '../../functions/core/routing.js';
import { buildkiteJob, workflowJobExamples } from '../support/webhook-fixtures.js';

const routing = (queues: QueueAgents[], buildkiteDefaultQueue = 'default'): Routing => ({
  queues,
  buildkiteDefaultQueue,
});

describe('Buildkite: every agent_query_rules rule met, with * globs', () => {
  const rules = (job: Record<string, unknown>) => job.agent_query_rules as string[];

  it('the documented job targets queue=default: the default queue takes it, another does not', () => {
    const job = buildkiteJob();
    expect(routeBuildkite(rules(job), defaultRouting(['default']))).toEqual({ queue: 'default' });
    expect(routeBuildkite(rules(job), defaultRouting(['linux']))).toEqual({
      unmet: 'no queue\'s agents can take it: linux: needs "queue=default", agents have "queue=linux"',
    });
  });

  it('a job with more requirements than queue= needs agents that carry them all', () => {
    const job = buildkiteJob({ agent_query_rules: ['queue=ci', 'os=linux', 'docker=true'] });
    const plain = defaultQueueAgents('ci', 'buildkite');
    const full = { ...plain, agentTags: ['queue=ci', 'os=linux', 'docker=true', 'arch=amd64'] };
    expect(routeBuildkite(rules(job), routing([plain]))).toEqual({
      unmet: 'no queue\'s agents can take it: ci: needs "os=linux", agents have no "os" tag',
    });
    // What counts is the tags the agents carry, not the queue's name in QUEUES.
    expect(routeBuildkite(rules(job), routing([plain, { ...full, queue: 'ci-full' }]))).toEqual({ queue: 'ci-full' });
    expect(routeBuildkite(rules(job), routing([plain, full]))).toEqual({ queue: 'ci' });
  });

  it('* in a rule value matches any run of characters; a key must exist', () => {
    expect(unmetBuildkiteRule(['os=*'], ['os=linux'])).toBeUndefined();
    expect(unmetBuildkiteRule(['os=*'], ['queue=x'])).toBe('needs "os=*", agents have no "os" tag');
    expect(unmetBuildkiteRule(['ruby=2.*'], ['ruby=2.7.1'])).toBeUndefined();
    expect(unmetBuildkiteRule(['ruby=2.*'], ['ruby=3.1'])).toBe('needs "ruby=2.*", agents have "ruby=3.1"');
    expect(unmetBuildkiteRule(['queue=default'], ['queue=building', 'queue=default'])).toBeUndefined();
    expect(globMatch('a.b', 'aXb')).toBe(false); // only * is special
    expect(globMatch('*-large', 'linux-large')).toBe(true);
  });

  it('a job without a queue= rule targets the configured default queue', () => {
    const queues = [defaultQueueAgents('default'), defaultQueueAgents('linux-small')];
    expect(routeBuildkite([], routing(queues))).toEqual({ queue: 'default' });
    expect(
      routeBuildkite(
        ['os=*'],
        routing([{ ...queues[1], agentTags: ['queue=linux-small', 'os=linux'] } as QueueAgents], 'linux-small'),
      ),
    ).toEqual({ queue: 'linux-small' });
  });

  it('queues of another provider never count a Buildkite job; QUEUES order breaks ties', () => {
    expect(routeBuildkite(['queue=q'], routing([defaultQueueAgents('q', 'github')]))).toEqual({
      unmet: 'no queue served here runs buildkite agents',
    });
    const wide = { ...defaultQueueAgents('a', 'buildkite'), agentTags: ['queue=q'] };
    const other = { ...defaultQueueAgents('b', 'buildkite'), agentTags: ['queue=q'] };
    expect(routeBuildkite(['queue=q'], routing([wide, other]))).toEqual({ queue: 'a' });
    expect(routeBuildkite(['queue=q'], routing([other, wide]))).toEqual({ queue: 'b' });
  });
});

describe('GitHub: every runs-on label is one of the runner labels (case-insensitive)', () => {
  const examples = workflowJobExamples();

  it('the real examples against runners with the default labels', () => {
    const r = defaultRouting(['k8s', 'ubuntu-latest']);
    for (const e of examples) {
      const got = routeGithub(e.workflow_job.labels, r);
      const labels = e.workflow_job.labels.join(',');
      if (labels === 'self-hosted,k8s') expect(got).toEqual({ queue: 'k8s' });
      else if (labels === 'ubuntu-latest') expect(got).toEqual({ queue: 'ubuntu-latest' });
      else expect(got).toMatchObject({ unmet: expect.stringContaining('"db-app", "dc-03"') });
    }
  });

  it('README example runs-on [self-hosted, linux, ci-small] fits the default labels of ci-small', () => {
    expect(routeGithub(['self-hosted', 'Linux', 'ci-small'], defaultRouting(['ci-small']))).toEqual({
      queue: 'ci-small',
    });
    expect(routeGithub(['self-hosted', 'linux', 'gpu'], defaultRouting(['ci-small']))).toEqual({
      unmet: 'no queue\'s agents can take it: ci-small: runners lack label(s) "gpu"',
    });
  });
});

describe('GitLab: the job tags are a subset of the runner tags', () => {
  const docker = { ...defaultQueueAgents('docker', 'gitlab'), runnerTags: ['docker', 'linux'] };
  const untagged = { ...defaultQueueAgents('shared', 'gitlab'), runUntagged: true };

  it('subset, case-insensitively; untagged jobs only where runners run untagged jobs', () => {
    expect(routeGitlab(['docker'], routing([docker]))).toEqual({ queue: 'docker' });
    expect(routeGitlab(['Linux', 'docker'], routing([docker]))).toEqual({ queue: 'docker' });
    expect(routeGitlab(['docker', 'gpu'], routing([docker]))).toEqual({
      unmet: 'no queue\'s agents can take it: docker: runners lack tag(s) "gpu"',
    });
    expect(routeGitlab([], routing([docker]))).toEqual({
      unmet: "no queue's agents can take it: docker: job is untagged and runners do not run untagged jobs",
    });
    expect(routeGitlab([], routing([docker, untagged]))).toEqual({ queue: 'shared' });
  });
});
