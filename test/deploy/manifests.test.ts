/**
 * Every manifest in infra/k8s, every agent Job template, and every Job the scaler would build
 * from each template validated against the Kubernetes OpenAPI schema (kubernetes-models), since
 * no API server is available here; plus the names that tie the pieces together.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { V1Job } from '@kubernetes/client-node';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { VARIABLES, type VariableSpec } from '../../functions/shared/config.js';
import { PROJECT_ROOT, serverlessParams } from '../../infra/aws/definitions.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const K8S = join(PROJECT_ROOT, 'infra/k8s');

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'batch/v1/Job': Job,
};

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(f) ? [p] : [];
  });
}

function docs(file: string): any[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
}

const isKustomization = (d: any) => String(d?.apiVersion).startsWith('kustomize.config.k8s.io/');
const manifests = yamlFiles(K8S).flatMap((file) =>
  docs(file)
    .filter((d) => d && !isKustomization(d))
    .map((doc) => ({ file: relative(PROJECT_ROOT, file), doc })),
);
const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const named = (kind: string, name: string) => byKind(kind).find((d) => d.metadata.name === name);
/** The GitLab Kubernetes executor's manifests (infra/k8s/gitlab): the only ones outside ci-agents. */
const isGitlabExecutor = (file: string) => file.startsWith('infra/k8s/gitlab/');
const TEMPLATES = ['buildkite', 'github', 'gitlab'] as const;
const template = (name: string) => parse(readFileSync(join(K8S, 'agents', `${name}.yaml`), 'utf8')) as V1Job;
const configDefault = (name: string) => (VARIABLES as readonly VariableSpec[]).find((v) => v.name === name)!.default!;

/**
 * The template with the shared cache PVC mounted at /cache in its first container, as the README
 * tells operators to do: a volume already mounted at /cache (an emptyDir) gets the claim instead.
 */
function withBuildCache(t: V1Job, claimName: string): V1Job {
  const job = structuredClone(t);
  const pod = job.spec!.template.spec!;
  const container = pod.containers[0]!;
  const existing = (container.volumeMounts ?? []).find((m) => m.mountPath === '/cache');
  if (existing) {
    pod.volumes = pod.volumes!.map((v) =>
      v.name === existing.name ? { name: v.name, persistentVolumeClaim: { claimName } } : v,
    );
  } else {
    pod.volumes = [...(pod.volumes ?? []), { name: 'build-cache', persistentVolumeClaim: { claimName } }];
    container.volumeMounts = [...(container.volumeMounts ?? []), { name: 'build-cache', mountPath: '/cache' }];
  }
  return job;
}

function validate(doc: any): void {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) throw new Error(`no schema for ${doc.apiVersion}/${doc.kind}`);
  new Model(doc).validate();
}

describe('infra/k8s manifests', () => {
  it('finds the manifests', () => {
    expect(manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort()).toEqual(
      expect.arrayContaining([
        'Namespace/ci-agents',
        'ServiceAccount/ci-agent',
        'Role/ci-agent-autoscaler',
        'RoleBinding/ci-agent-autoscaler',
        'PersistentVolumeClaim/ci-build-cache',
      ]),
    );
  });

  for (const { file, doc } of manifests) {
    it(`${file}: ${doc.kind}/${doc.metadata?.name} is valid against the Kubernetes schema`, () => {
      expect(() => validate(doc)).not.toThrow();
    });
  }

  it('the schema validation rejects a broken manifest (the check can fail)', () => {
    const role = structuredClone(named('Role', 'ci-agent-autoscaler'));
    role.rules[0].verbs = 'list';
    expect(() => validate(role)).toThrow(/verbs/);
  });

  it('kustomization lists every applied manifest and the cache component exists', () => {
    const k = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'));
    expect(k.namespace).toBe('ci-agents');
    expect(k.resources.sort()).toEqual(['namespace.yaml', 'rbac.yaml', 'service-account.yaml']);
    const component = parse(readFileSync(join(K8S, 'cache/kustomization.yaml'), 'utf8'));
    expect(component.kind).toBe('Component');
    for (const r of component.resources) expect(statSync(join(K8S, 'cache', r)).isFile()).toBe(true);
  });

  it('one namespace everywhere: manifests, KUBE_NAMESPACE default, serverless.yml', () => {
    expect(configDefault('KUBE_NAMESPACE')).toBe('ci-agents');
    expect(serverlessParams().kubeNamespace).toBe('ci-agents');
    for (const { file, doc } of manifests.filter(
      (m) => m.doc.kind !== 'Namespace' && m.doc.kind !== 'Job' && !isGitlabExecutor(m.file),
    )) {
      expect(doc.metadata.namespace, file).toBe('ci-agents');
    }
  });

  it("GitLab executor: job pods in ci-builds run as ci-build (no token, no Role); the runner's Role stays in ci-builds", () => {
    const k = parse(readFileSync(join(K8S, 'gitlab/kustomization.yaml'), 'utf8'));
    for (const r of k.resources) expect(statSync(join(K8S, 'gitlab', r)).isFile()).toBe(true);
    const build = named('ServiceAccount', 'ci-build');
    expect(build).toMatchObject({ metadata: { namespace: 'ci-builds' }, automountServiceAccountToken: false });
    for (const rb of byKind('RoleBinding')) {
      expect(rb.subjects.some((s: any) => s.kind === 'ServiceAccount' && s.name === 'ci-build')).toBe(false);
    }
    expect(named('ServiceAccount', 'gitlab-runner').metadata.namespace).toBe('ci-agents');
    const role = named('Role', 'gitlab-runner-executor');
    expect(role.metadata.namespace).toBe('ci-builds');
    expect(named('RoleBinding', 'gitlab-runner-executor')).toMatchObject({
      metadata: { namespace: 'ci-builds' },
      roleRef: { kind: 'Role', name: 'gitlab-runner-executor' },
      subjects: [{ kind: 'ServiceAccount', name: 'gitlab-runner', namespace: 'ci-agents' }],
    });
    // Nothing cluster-wide and nothing in ci-agents, where the runner tokens are kept.
    for (const { doc } of manifests.filter((m) => isGitlabExecutor(m.file) && /Role/.test(m.doc.kind))) {
      expect(doc.metadata.namespace).toBe('ci-builds');
    }
    const runner = template('gitlab').spec!.template.spec!;
    expect(runner.serviceAccountName).toBe('gitlab-runner');
    expect(runner.containers[0]!.args).toEqual(
      expect.arrayContaining(['--kubernetes-namespace=ci-builds', '--kubernetes-service-account=ci-build']),
    );
  });

  it('the agent ServiceAccount has no token mounted and no Role binds it', () => {
    const sa = named('ServiceAccount', 'ci-agent');
    expect(sa.automountServiceAccountToken).toBe(false);
    for (const rb of byKind('RoleBinding')) {
      expect(rb.subjects.some((s: any) => s.kind === 'ServiceAccount' && s.name === sa.metadata.name)).toBe(false);
    }
  });

  it('the Role is bound to the group the EKS access entry maps the scaler to, and nothing is cluster-wide', () => {
    const access = parse(readFileSync(join(PROJECT_ROOT, 'infra/aws/eks-access.yml'), 'utf8'));
    const groups = access.Resources.ScalerAccessEntry.Properties.KubernetesGroups;
    const rb = named('RoleBinding', 'ci-agent-autoscaler');
    expect(rb.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: named('Role', 'ci-agent-autoscaler').metadata.name,
    });
    expect(rb.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: groups[0] }]);
    expect(manifests.filter((m) => /^Cluster/.test(m.doc.kind))).toEqual([]);
  });
});

describe('agent Job templates and the Jobs the scaler builds from them', () => {
  const params = (queue: string) => ({
    namespace: configDefault('KUBE_NAMESPACE'),
    queue,
    dispatchId: 'd-20261123T120000Z-0001',
    jobName: jobNameFor(queue, 'd-20261123T120000Z-0001'),
    count: 7,
    ttlSecondsAfterFinished: Number(configDefault('JOB_TTL_SECONDS_AFTER_FINISHED')),
    activeDeadlineSeconds: Number(configDefault('JOB_ACTIVE_DEADLINE_SECONDS')),
  });

  for (const name of TEMPLATES) {
    it(`${name}: the template and the built Job are valid, run as ci-agent, and keep the restricted settings`, () => {
      const t = template(name);
      expect(() => validate(t)).not.toThrow();
      for (const queue of ['default', 'Linux ARM64 / large']) {
        const job = buildAgentJob(t, params(queue));
        expect(() => validate(job)).not.toThrow();
        expect(job.spec!.parallelism).toBe(7);
        expect(job.metadata!.name!.length).toBeLessThanOrEqual(63);
      }
      const pod = t.spec!.template.spec!;
      if (name === 'gitlab') {
        // The runner pod drives job pods through the API (Role in ci-builds only, checked
        // above); the CI jobs themselves run as ci-build, with no token.
        expect(pod.serviceAccountName).toBe('gitlab-runner');
        expect(pod.automountServiceAccountToken).toBe(true);
      } else {
        expect(pod.serviceAccountName).toBe(named('ServiceAccount', 'ci-agent').metadata.name);
        expect(pod.automountServiceAccountToken).toBe(false);
      }
    });

    it(`${name}: with the shared build cache mounted, the Job is still valid and claims the PVC`, () => {
      const claim = byKind('PersistentVolumeClaim')[0].metadata.name;
      const job = buildAgentJob(withBuildCache(template(name), claim), params('default'));
      expect(() => validate(job)).not.toThrow();
      const pod = job.spec!.template.spec!;
      const names = pod.volumes!.map((v) => v.name);
      expect(new Set(names).size, 'volume names are unique').toBe(names.length);
      for (const c of pod.containers) {
        const paths = (c.volumeMounts ?? []).map((m) => m.mountPath);
        expect(new Set(paths).size, 'mount paths are unique').toBe(paths.length);
      }
      expect(pod.volumes!.filter((v) => v.persistentVolumeClaim?.claimName === claim)).toHaveLength(1);
    });
  }

  it('the cache PVC is ReadWriteMany (agents on many nodes share it)', () => {
    expect(byKind('PersistentVolumeClaim')[0].spec.accessModes).toEqual(['ReadWriteMany']);
  });
});
