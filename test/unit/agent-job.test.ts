import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  buildAgentJob,
  DISPATCH_ID_LABEL,
  dispatchIdOf,
  isFinished,
  jobNameFor,
  labelSafe,
  liveAgents,
  MANAGED_BY_LABEL,
  QUEUE_ANNOTATION,
  QUEUE_LABEL,
  queueOf,
} from '../../functions/core/agent-job.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'tpl', labels: { team: 'ci' } },
  spec: {
    backoffLimit: 6,
    template: {
      metadata: { labels: { 'app.kubernetes.io/name': 'agent' } },
      spec: {
        restartPolicy: 'OnFailure',
        containers: [
          {
            name: 'agent',
            image: 'buildkite/agent:3',
            env: [
              { name: 'BUILDKITE_AGENT_TAGS', value: 'queue=$(CI_AUTOSCALER_QUEUE)' },
              { name: 'CI_AUTOSCALER_QUEUE', value: 'stale' },
            ],
          },
          { name: 'sidecar', image: 'busybox' },
        ],
      },
    },
  },
};

const params = {
  namespace: 'ci-agents',
  queue: 'linux',
  dispatchId: 'linux#0001',
  jobName: jobNameFor('linux', 'linux#0001'),
  count: 4,
  ttlSecondsAfterFinished: 600,
  activeDeadlineSeconds: 7200,
};

describe('buildAgentJob', () => {
  const job = buildAgentJob(template, params);

  it('makes one Indexed Job for the batch whose agents fail independently', () => {
    expect(job.spec).toMatchObject({
      completionMode: 'Indexed',
      completions: 4,
      parallelism: 4,
      backoffLimitPerIndex: 0,
      podFailurePolicy: {
        rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }],
      },
      ttlSecondsAfterFinished: 600,
      activeDeadlineSeconds: 7200,
    });
    // A job-wide backoffLimit from the template would fail all agents together: dropped.
    expect(job.spec?.backoffLimit).toBeUndefined();
    expect(job.spec?.template.spec?.restartPolicy).toBe('Never');
  });

  it('labels the Job and its pods, and annotates the exact queue', () => {
    for (const meta of [job.metadata, job.spec?.template.metadata]) {
      expect(meta?.labels).toMatchObject({
        [MANAGED_BY_LABEL]: 'ci-agent-autoscaler',
        [QUEUE_LABEL]: 'linux',
        [DISPATCH_ID_LABEL]: labelSafe('linux#0001'),
      });
      expect(meta?.annotations?.[QUEUE_ANNOTATION]).toBe('linux');
    }
    expect(job.metadata).toMatchObject({ name: params.jobName, namespace: 'ci-agents' });
    expect(job.metadata?.labels?.team).toBe('ci');
    expect(queueOf(job)).toBe('linux');
    expect(dispatchIdOf(job)).toBe('linux#0001');
  });

  it('puts CI_AUTOSCALER_QUEUE first in every container so $(CI_AUTOSCALER_QUEUE) expands', () => {
    for (const c of job.spec!.template.spec!.containers) {
      expect(c.env?.[0]).toEqual({ name: 'CI_AUTOSCALER_QUEUE', value: 'linux' });
      expect(c.env?.filter((e) => e.name === 'CI_AUTOSCALER_QUEUE')).toHaveLength(1);
    }
  });

  it('overwrites successPolicy, podReplacementPolicy and managedBy from a custom template', () => {
    const custom: V1Job = {
      ...template,
      spec: {
        ...template.spec,
        successPolicy: { rules: [{ succeededCount: 1 }] },
        podReplacementPolicy: 'TerminatingOrFailed',
        managedBy: 'kueue.x-k8s.io/multikueue',
        template: template.spec?.template ?? {},
      },
    };
    const built = buildAgentJob(custom, params);
    // One succeeded agent must not end the Job (and stop the others), no second agent may start
    // for an index whose first is still stopping, and the built-in controller runs it.
    expect(built.spec?.successPolicy).toBeUndefined();
    expect(built.spec?.podReplacementPolicy).toBe('Failed');
    expect(built.spec?.managedBy).toBeUndefined();
  });

  it('injects what the queue declares its agents carry: the same source as the matching', () => {
    const agents = {
      queue: 'linux',
      provider: 'buildkite' as const,
      agentTags: ['queue=linux', 'os=linux', 'docker=true'],
      runnerLabels: ['self-hosted', 'linux'],
      runnerTags: ['linux'],
      runUntagged: false,
    };
    const built = buildAgentJob(template, { ...params, agents });
    const env = built.spec?.template.spec?.containers[0]?.env ?? [];
    expect(env.slice(0, 4)).toEqual([
      { name: 'CI_AUTOSCALER_QUEUE', value: 'linux' },
      { name: 'CI_AUTOSCALER_AGENT_TAGS', value: 'queue=linux,os=linux,docker=true' },
      { name: 'CI_AUTOSCALER_RUNNER_LABELS', value: 'self-hosted,linux' },
      { name: 'CI_AUTOSCALER_RUNNER_TAGS', value: 'linux' },
    ]);
    // The template's own BUILDKITE_AGENT_TAGS cannot disagree with the declaration: replaced.
    expect(env.filter((e) => e.name === 'BUILDKITE_AGENT_TAGS')).toEqual([
      { name: 'BUILDKITE_AGENT_TAGS', value: 'queue=linux,os=linux,docker=true' },
    ]);
    // Also in containers that did not set it, on a Buildkite queue.
    const sidecar = built.spec?.template.spec?.containers[1]?.env ?? [];
    expect(sidecar.find((e) => e.name === 'BUILDKITE_AGENT_TAGS')?.value).toBe('queue=linux,os=linux,docker=true');
  });

  it("points CI_SERVER_TOKEN and CI_SERVER_URL at the queue's own GitLab runner Secret", () => {
    const gitlabTemplate: V1Job = {
      ...template,
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'runner',
                image: 'gitlab/gitlab-runner:alpine-v18.6.6',
                env: [
                  { name: 'CI_SERVER_URL', valueFrom: { secretKeyRef: { name: 'gitlab-runner', key: 'url' } } },
                  { name: 'CI_SERVER_TOKEN', valueFrom: { secretKeyRef: { name: 'gitlab-runner', key: 'token' } } },
                  { name: 'OTHER', valueFrom: { secretKeyRef: { name: 'unrelated', key: 'x' } } },
                ],
              },
            ],
          },
        },
      },
    };
    const built = buildAgentJob(gitlabTemplate, { ...params, runnerTokenSecret: 'gitlab-runner-gpu' });
    const token = built.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'CI_SERVER_TOKEN');
    expect(token?.valueFrom?.secretKeyRef).toEqual({ name: 'gitlab-runner-gpu', key: 'token' });
    // The URL comes from the queue's Secret too: with only that Secret the pod starts (no
    // CreateContainerConfigError for a missing `gitlab-runner`); other Secrets stay as they are.
    const env = built.spec?.template.spec?.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === 'CI_SERVER_URL')?.valueFrom?.secretKeyRef).toEqual({
      name: 'gitlab-runner-gpu',
      key: 'url',
    });
    expect(env.find((e) => e.name === 'OTHER')?.valueFrom?.secretKeyRef?.name).toBe('unrelated');
    expect(gitlabTemplate.spec?.template.spec?.containers[0]?.env?.[0]?.valueFrom?.secretKeyRef?.name).toBe(
      'gitlab-runner',
    );
  });

  it('does not modify the template', () => {
    expect(template.spec?.backoffLimit).toBe(6);
    expect(template.spec?.template.spec?.containers[0]?.env).toHaveLength(2);
    expect(template.metadata?.name).toBe('tpl');
  });

  it('keeps the pod volumes of the template as they are, a per-agent ephemeral volume cloned from a snapshot included', () => {
    const ephemeral = {
      name: 'build-cache',
      ephemeral: {
        volumeClaimTemplate: {
          metadata: { labels: { 'app.kubernetes.io/part-of': 'ci-agent-autoscaler' } },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: 'ebs-gp3',
            resources: { requests: { storage: '50Gi' } },
            dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'ci-build-cache-warm' },
          },
        },
      },
    };
    const withVolume = structuredClone(template);
    const pod = withVolume.spec!.template.spec!;
    pod.volumes = [{ name: 'work', emptyDir: {} }, ephemeral];
    pod.containers[0]!.volumeMounts = [{ name: 'build-cache', mountPath: '/cache' }];
    const built = buildAgentJob(withVolume, { ...params, count: 9 }).spec!.template.spec!;
    expect(built.volumes).toEqual([{ name: 'work', emptyDir: {} }, ephemeral]);
    expect(built.containers[0]!.volumeMounts).toEqual([{ name: 'build-cache', mountPath: '/cache' }]);
  });

  it('rejects a count below 1', () => {
    expect(() => buildAgentJob(template, { ...params, count: 0 })).toThrow(RangeError);
  });
});

describe('names and label values', () => {
  const queues = [
    'linux',
    'Linux_Large.x86',
    'a',
    'q-'.repeat(40),
    'weird..name__',
    '9',
    'UPPER.CASE-queue_63'.padEnd(63, 'x'),
  ];

  it('jobNameFor is a DNS-1123 label <= 63 chars, deterministic, distinct per dispatch', () => {
    for (const q of queues) {
      for (const d of ['1', 'x'.repeat(200), 'Mixed#Case/Id']) {
        const name = jobNameFor(q, d);
        expect(name.length).toBeLessThanOrEqual(63);
        expect(name).toMatch(DNS_LABEL);
        expect(jobNameFor(q, d)).toBe(name);
      }
      expect(jobNameFor(q, '1')).not.toBe(jobNameFor(q, '2'));
    }
    expect(jobNameFor('a', 'b')).not.toBe(jobNameFor('a-', 'b'));
  });

  it('labelSafe keeps valid values and makes others valid with a hash suffix', () => {
    expect(labelSafe('linux')).toBe('linux');
    expect(labelSafe('Linux_Large.x86')).toBe('Linux_Large.x86');
    for (const v of ['queue-', '_q', 'a/b', 'x'.repeat(64), 'linux#0001', '..', '']) {
      const safe = labelSafe(v);
      expect(safe.length).toBeLessThanOrEqual(63);
      expect(safe).toMatch(LABEL_VALUE);
    }
    expect(labelSafe('a/b')).not.toBe(labelSafe('a:b'));
  });
});

function jobWith(spec: { parallelism?: number; completions?: number }, status: V1Job['status']): V1Job {
  return { spec: { template: {}, ...spec }, ...(status ? { status } : {}) };
}

describe('liveAgents', () => {
  const complete = [{ type: 'Complete', status: 'True' }];
  const failed = [{ type: 'Failed', status: 'True', reason: 'FailedIndexes' }];
  it.each([
    ['just created, no status yet (all pods Pending count)', jobWith({ parallelism: 3, completions: 3 }, {}), 3],
    ['pending and running', jobWith({ parallelism: 3, completions: 3 }, { active: 3, ready: 1 }), 3],
    ['one succeeded', jobWith({ parallelism: 3, completions: 3 }, { active: 2, succeeded: 1 }), 2],
    [
      'one failed, siblings still running',
      jobWith({ parallelism: 3, completions: 3 }, { active: 2, failed: 1, failedIndexes: '1' }),
      2,
    ],
    [
      'one failed one succeeded',
      jobWith({ parallelism: 3, completions: 3 }, { active: 1, failed: 1, succeeded: 1 }),
      1,
    ],
    ['all done, Complete', jobWith({ parallelism: 3, completions: 3 }, { succeeded: 3, conditions: complete }), 0],
    [
      'Failed (FailedIndexes) with nothing left',
      jobWith({ parallelism: 3, completions: 3 }, { succeeded: 2, failed: 1, conditions: failed }),
      0,
    ],
    [
      'Failed by deadline while agents ran',
      jobWith(
        { parallelism: 3, completions: 3 },
        { active: 3, conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded' }] },
      ),
      0,
    ],
    [
      'FailureTarget, pods still stopping',
      jobWith(
        { parallelism: 2, completions: 2 },
        { active: 1, terminating: 1, conditions: [{ type: 'FailureTarget', status: 'True' }] },
      ),
      2,
    ],
    [
      'FailureTarget, pods gone',
      jobWith(
        { parallelism: 2, completions: 2 },
        { failed: 2, conditions: [{ type: 'FailureTarget', status: 'True' }] },
      ),
      0,
    ],
    [
      'a False condition does not finish',
      jobWith({ parallelism: 2, completions: 2 }, { conditions: [{ type: 'Complete', status: 'False' }] }),
      2,
    ],
    ['parallelism below completions', jobWith({ parallelism: 2, completions: 5 }, { active: 2, succeeded: 1 }), 2],
    ['never negative', jobWith({ parallelism: 2, completions: 2 }, { succeeded: 3 }), 0],
  ])('%s', (_name, job, expected) => {
    expect(liveAgents(job)).toBe(expected);
    expect(isFinished(job)).toBe(job.status?.conditions?.some((c) => c.status === 'True') ?? false);
  });
});
