import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { V1Job } from '@kubernetes/client-node';
import { mockClient } from 'aws-sdk-client-mock';
import { Job } from 'kubernetes-models/batch/v1';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { usesJitConfig } from '../../functions/adapters/github/jit-runners.js';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import {
  agentsDir,
  BUILTIN_TEMPLATES,
  clearTemplateCache,
  loadTemplate,
  TemplateError,
  templatePath,
} from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { VARIABLES } from '../../functions/shared/config.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';

const params = {
  namespace: 'ci-agents',
  queue: 'linux-large',
  dispatchId: 'd1',
  jobName: jobNameFor('linux-large', 'd1'),
  count: 5,
  ttlSecondsAfterFinished: 600,
  activeDeadlineSeconds: 7200,
};

let kube: FakeKube;
beforeAll(async () => {
  kube = await startFakeKube();
});
afterAll(async () => kube?.stop());
afterEach(() => {
  clearTemplateCache();
  delete process.env.LAMBDA_TASK_ROOT;
});

/** client-node's V1Job (Dates) as the JSON kubernetes-models validates (what the API server gets). */
const asModel = (job: V1Job): ConstructorParameters<typeof Job>[0] => JSON.parse(JSON.stringify(job));

describe('agent Job templates', () => {
  it.each(BUILTIN_TEMPLATES)(
    '%s: template and built Job are valid batch/v1 Jobs the API server accepts',
    async (name) => {
      const template = await loadTemplate(name);
      new Job(asModel(template)).validate();
      const job = buildAgentJob(template, params);
      new Job(asModel(job)).validate();
      const spec = job.spec!.template.spec!;
      // The GitLab runner creates its job pods through the API (infra/k8s/gitlab); the jobs run as ci-build.
      expect(spec.serviceAccountName).toBe(name === 'gitlab' ? 'gitlab-runner' : 'ci-agent');
      for (const c of spec.containers) {
        expect(c.env?.[0]).toEqual({ name: 'CI_AUTOSCALER_QUEUE', value: 'linux-large' });
        expect(c.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
        expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
        // Tokens come from Secrets, never inline (a *_TOKEN_FILE names a mounted file, not a token;
        // Buildkite's fd://3 names the descriptor the agent reads its token from, see below).
        // GitHub runners have no token at all: each gets a single-use just-in-time configuration
        // (see the github test below).
        const tokens = (c.env ?? []).filter(
          (e) => /TOKEN/.test(e.name) && !e.name.endsWith('_FILE') && e.value !== 'fd://3',
        );
        if (name === 'gitlab') expect(tokens.map((e) => e.name)).not.toEqual([]);
        else expect(tokens).toEqual([]);
        expect(tokens.filter((e) => e.value !== undefined || !e.valueFrom?.secretKeyRef?.name)).toEqual([]);
      }
      kube.reset();
      const res = await fetch(`${kube.url}/apis/batch/v1/namespaces/ci-agents/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${kube.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(job),
      });
      expect(res.status).toBe(201);
      expect(kube.pods()).toHaveLength(5);
    },
  );

  it('buildkite: one job then exit, idle timeout, tagged with its queue, token from the Secret', async () => {
    const c = (await loadTemplate('buildkite')).spec!.template.spec!.containers[0]!;
    expect(c.image).toMatch(/^buildkite\/agent:/);
    expect(c.args).toEqual(expect.arrayContaining(['start', '--disconnect-after-job']));
    expect(c.args!.some((a) => /^--disconnect-after-idle-timeout=\d+$/.test(a))).toBe(true);
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));
    expect(env.BUILDKITE_AGENT_TAGS?.value).toBe('$(CI_AUTOSCALER_AGENT_TAGS)');
    // The token is neither in the environment nor in a file the agent container mounts: the init
    // container copies it from the Secret, the agent container reads it on fd 3 and deletes it.
    expect(env.BUILDKITE_AGENT_TOKEN).toEqual({ name: 'BUILDKITE_AGENT_TOKEN', value: 'fd://3' });
    const pod = (await loadTemplate('buildkite')).spec!.template.spec!;
    expect(JSON.stringify(pod.containers)).not.toMatch(/secretKeyRef|buildkite-agent-token/);
    expect(pod.volumes!.find((v) => v.name === 'agent-token-secret')!.secret!.secretName).toBe('buildkite-agent-token');
    expect(pod.initContainers!.map((i) => i.volumeMounts!.map((m) => m.name))).toEqual([
      ['agent-token-secret', 'agent-token'],
    ]);
    expect(c.command!.slice(0, 2)).toEqual(['/sbin/tini', '--']);
    expect(c.command!.join(' ')).toMatch(/exec 3< \/agent-token\/token && rm -f \/agent-token\/token/);
    expect(c.command!.join(' ')).toMatch(/exec 3<&-/);
  });

  it('github: a just-in-time runner (no registration token), idle timeout, Secret only in the init container; gitlab: run-single, one build', async () => {
    const template = await loadTemplate('github');
    expect(usesJitConfig(template)).toBe(true);
    const pod = template.spec!.template.spec!;
    const gh = pod.containers[0]!;
    const script = gh.args!.join(' ');
    // The runner's own single-use configuration, through the variable the runner scrubs.
    expect(script).toMatch(/ACTIONS_RUNNER_INPUT_JITCONFIG="\$\(cat \/runner-input\/jitconfig\)"/);
    expect(script).toMatch(/rm -f \/runner-input\/jitconfig/);
    // The listener itself, not run.sh (whose run-helper.sh maps failures to exit 0).
    expect(script).toMatch(/\.\/bin\/Runner\.Listener run/);
    expect(script).not.toMatch(/config\.sh|--token|RUNNER_TOKEN/);
    expect(script).toMatch(/RUNNER_IDLE_TIMEOUT_SECONDS/);
    expect(script).toMatch(/ACTIONS_RUNNER_HOOK_JOB_STARTED/);
    expect(JSON.stringify(template)).not.toMatch(/secretKeyRef/);
    expect(gh.volumeMounts!.map((m) => m.name)).not.toContain('jitconfig');
    const init = pod.initContainers![0]!;
    expect(init.volumeMounts!.find((m) => m.name === 'jitconfig')).toMatchObject({ mountPath: '/jit', readOnly: true });
    expect(init.env![0]!.valueFrom!.fieldRef!.fieldPath).toBe(
      "metadata.annotations['batch.kubernetes.io/job-completion-index']",
    );
    expect(pod.volumes!.find((v) => v.name === 'jitconfig')!.secret!.defaultMode).toBe(0o440);
    for (const c of [gh, init]) expect(c.image).toMatch(/^ghcr\.io\/actions\/actions-runner:\d+\.\d+\.\d+$/);
    const gl = (await loadTemplate('gitlab')).spec!.template.spec!.containers[0]!;
    expect(gl.args).toEqual(expect.arrayContaining(['run-single', '--max-builds=1']));
    expect(gl.args!.some((a) => a.startsWith('--wait-timeout='))).toBe(true);
    // Jobs run in their own pods (Kubernetes executor), and the token is not in argv.
    expect(gl.args).toEqual(
      expect.arrayContaining([
        '--executor=kubernetes',
        '--kubernetes-namespace=ci-builds',
        '--kubernetes-service-account=ci-build',
      ]),
    );
    expect(gl.args!.join(' ')).not.toMatch(/token/i);
    const glEnv = Object.fromEntries((gl.env ?? []).map((e) => [e.name, e]));
    expect(glEnv.CI_SERVER_TOKEN?.valueFrom?.secretKeyRef).toEqual({ name: 'gitlab-runner', key: 'token' });
  });

  it("the default Job deadline outlasts a job of GitHub's default timeout-minutes (360) after the longest idle wait", async () => {
    const deadline = Number(VARIABLES.find((v) => v.name === 'JOB_ACTIVE_DEADLINE_SECONDS')!.default);
    const idle = (await loadTemplate('github')).spec!.template.spec!.containers[0]!.env!.find(
      (e) => e.name === 'RUNNER_IDLE_TIMEOUT_SECONDS',
    )!.value;
    expect(deadline).toBeGreaterThanOrEqual(360 * 60 + Number(idle));
  });

  it('github-container-hooks.yaml: github.yaml with the container hooks, valid and accepted by the API server', async () => {
    const base = await loadTemplate('github');
    const variant = await loadTemplate(join(agentsDir(), 'github-container-hooks.yaml'));
    expect(usesJitConfig(variant)).toBe(true);
    new Job(asModel(variant)).validate();
    const pod = variant.spec!.template.spec!;
    const runner = pod.containers[0]!;
    // The same runner script, init container and volumes for the JIT configuration as github.yaml.
    expect(runner.args).toEqual(base.spec!.template.spec!.containers[0]!.args);
    expect(pod.initContainers).toEqual(base.spec!.template.spec!.initContainers);
    const env = Object.fromEntries((runner.env ?? []).map((e) => [e.name, e]));
    expect(env.ACTIONS_RUNNER_CONTAINER_HOOKS?.value).toBe('/home/runner/k8s/index.js');
    expect(env.ACTIONS_RUNNER_POD_NAME?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(env.ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER?.value).toBe('true');
    // The claim Kubernetes creates for an ephemeral volume is named <pod>-<volume>.
    const work = pod.volumes!.find((v) => v.name === 'work')!;
    expect(work.ephemeral?.volumeClaimTemplate?.spec?.accessModes).toEqual(['ReadWriteOnce']);
    expect(env.ACTIONS_RUNNER_CLAIM_NAME?.value).toBe('$(ACTIONS_RUNNER_POD_NAME)-work');
    expect(runner.volumeMounts!.find((m) => m.name === 'work')!.mountPath).toBe('/home/runner/_work');
    expect([pod.serviceAccountName, pod.automountServiceAccountToken]).toEqual(['ci-agent-hooks', true]);
    const job = buildAgentJob(variant, params);
    kube.reset();
    const res = await fetch(`${kube.url}/apis/batch/v1/namespaces/ci-agents/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${kube.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(job),
    });
    expect(res.status).toBe(201);
  });

  it('every shipped template pins its image to a released version', async () => {
    const images = await Promise.all(
      ['buildkite', 'github', 'gitlab'].map(
        async (t) => (await loadTemplate(t)).spec!.template.spec!.containers[0]!.image,
      ),
    );
    expect(images).toEqual([
      'buildkite/agent:3.137.0',
      'ghcr.io/actions/actions-runner:2.335.1',
      'gitlab/gitlab-runner:alpine-v19.2.2',
    ]);
  });

  it('loads by path, caches, and rejects what is not a Job', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tpl-'));
    const ok = join(dir, 'custom.yaml');
    writeFileSync(
      ok,
      'apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: busybox\n',
    );
    const first = await loadTemplate(ok);
    expect(await loadTemplate(ok)).toBe(first);
    const notJob = join(dir, 'deploy.yaml');
    writeFileSync(notJob, 'apiVersion: apps/v1\nkind: Deployment\n');
    await expect(loadTemplate(notJob)).rejects.toThrow(TemplateError);
    const noContainers = join(dir, 'empty.yaml');
    writeFileSync(noContainers, 'apiVersion: batch/v1\nkind: Job\nspec: {}\n');
    await expect(loadTemplate(noContainers)).rejects.toThrow(/containers/);
    await expect(loadTemplate(join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read/);
  });

  it('a template with a per-agent ephemeral volume cloned from a snapshot reaches the API server intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tpl-'));
    const file = join(dir, 'buildkite-volume.yaml');
    const base = readFileSync(templatePath('buildkite'), 'utf8');
    // The per-agent volume as the README and agents/buildkite.yaml show it, appended to volumes.
    const volume = [
      '        - name: build-cache',
      '          ephemeral:',
      '            volumeClaimTemplate:',
      '              spec:',
      '                accessModes: [ReadWriteOnce]',
      '                storageClassName: ebs-gp3',
      '                resources:',
      '                  requests:',
      '                    storage: 50Gi',
      '                dataSource:',
      '                  apiGroup: snapshot.storage.k8s.io',
      '                  kind: VolumeSnapshot',
      '                  name: ci-build-cache-warm',
    ].join('\n');
    writeFileSync(file, base.replace(/\n {6}volumes:\n/, `\n      volumes:\n${volume}\n`));
    const job = buildAgentJob(await loadTemplate(file), params);
    kube.reset();
    const cluster = await createCluster({ kind: 'kubeconfig-file', path: kube.kubeconfigPath }, 'ci-agents');
    expect(await cluster.createJob(job)).toBe('created');
    const stored = kube.job(job.metadata!.name!)!.spec!.template.spec!.volumes!;
    expect(stored.find((v) => v.name === 'build-cache')).toEqual({
      name: 'build-cache',
      ephemeral: {
        volumeClaimTemplate: {
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: 'ebs-gp3',
            resources: { requests: { storage: '50Gi' } },
            dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'ci-build-cache-warm' },
          },
        },
      },
    });
  });

  it('finds the built-in templates under LAMBDA_TASK_ROOT first', () => {
    const root = mkdtempSync(join(tmpdir(), 'task-'));
    mkdirSync(join(root, 'infra', 'k8s', 'agents'), { recursive: true });
    process.env.LAMBDA_TASK_ROOT = root;
    expect(templatePath('buildkite')).toBe(join(root, 'infra', 'k8s', 'agents', 'buildkite.yaml'));
  });
});

describe('kubeconfig from SSM', () => {
  const ssm = mockClient(SSMClient);
  afterAll(() => {
    ssm.restore();
    resetAwsClients();
  });

  it('reads the SecureString with decryption and talks to the cluster it names', async () => {
    process.env.AWS_REGION = 'us-east-1';
    resetAwsClients();
    ssm.on(GetParameterCommand, { Name: '/ci/kubeconfig', WithDecryption: true }).resolves({
      Parameter: { Value: readFileSync(kube.kubeconfigPath, 'utf8') },
    });
    kube.reset();
    const cluster = await createCluster({ kind: 'kubeconfig-parameter', name: '/ci/kubeconfig' }, 'ci-agents');
    expect(await cluster.listAgentJobs()).toEqual([]);
    expect(kube.calls).toEqual([{ verb: 'list', group: 'batch', resource: 'jobs', namespace: 'ci-agents' }]);
  });
});
