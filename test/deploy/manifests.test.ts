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
    const role = structuredClone(byKind('Role')[0]);
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
    for (const { file, doc } of manifests.filter((m) => m.doc.kind !== 'Namespace' && m.doc.kind !== 'Job')) {
      expect(doc.metadata.namespace, file).toBe('ci-agents');
    }
  });

  it('the agent ServiceAccount has no token mounted and no Role binds it', () => {
    const sa = byKind('ServiceAccount')[0];
    expect(sa.automountServiceAccountToken).toBe(false);
    for (const rb of byKind('RoleBinding')) {
      expect(rb.subjects.some((s: any) => s.kind === 'ServiceAccount' && s.name === sa.metadata.name)).toBe(false);
    }
  });

  it('the Role is bound to the group the EKS access entry maps the scaler to, and nothing is cluster-wide', () => {
    const access = parse(readFileSync(join(PROJECT_ROOT, 'infra/aws/eks-access.yml'), 'utf8'));
    const groups = access.Resources.ScalerAccessEntry.Properties.KubernetesGroups;
    const rb = byKind('RoleBinding')[0];
    expect(rb.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: byKind('Role')[0].metadata.name,
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
      expect(pod.serviceAccountName).toBe(byKind('ServiceAccount')[0].metadata.name);
      expect(pod.automountServiceAccountToken).toBe(false);
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

describe('build cache client in the agent pods (issue 9)', () => {
  const kustomization = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'));
  type Generator = { name: string; files: string[]; literals: string[]; options: { disableNameSuffixHash: boolean } };
  const generated = (kustomization.configMapGenerator as Generator[]).find((g) => g.name === 'ci-cache')!;

  it('kustomize generates the ConfigMap ci-cache from infra/k8s/cache/ci-cache, under a stable name', () => {
    expect(generated.files).toEqual(['cache/ci-cache']);
    expect(generated.literals).toEqual(['url=']);
    expect(generated.options.disableNameSuffixHash).toBe(true);
    const script = statSync(join(K8S, 'cache/ci-cache'));
    expect(script.mode & 0o111, 'executable').not.toBe(0);
  });

  for (const name of TEMPLATES) {
    it(`${name}: mounts the client and a ServiceAccount token for audience ci-cache, and sets CI_CACHE_*`, () => {
      const pod = template(name).spec!.template.spec!;
      const container = pod.containers[0]!;
      const client = pod.volumes!.find((v) => v.configMap?.name === 'ci-cache')!;
      expect(client.configMap!.optional).toBe(true);
      expect(client.configMap!.items).toEqual([{ key: 'ci-cache', path: 'ci-cache', mode: 0o555 }]);
      expect(container.volumeMounts).toContainEqual({
        name: client.name,
        mountPath: '/usr/local/bin/ci-cache',
        subPath: 'ci-cache',
        readOnly: true,
      });
      const token = pod.volumes!.find((v) => v.projected)!;
      const source = token.projected!.sources![0]!.serviceAccountToken!;
      expect(source.audience).toBe(configDefault('CACHE_TOKEN_AUDIENCE'));
      expect(source.expirationSeconds).toBeLessThanOrEqual(3600);
      const mount = container.volumeMounts!.find((m) => m.name === token.name)!;
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e]));
      expect(env.CI_CACHE_TOKEN_FILE!.value).toBe(`${mount.mountPath}/${source.path}`);
      expect(env.CI_CACHE_URL!.valueFrom!.configMapKeyRef).toEqual({ name: 'ci-cache', key: 'url', optional: true });
      // The agent's registration token is not in the cache token's volume.
      expect(mount.mountPath).not.toMatch(/serviceaccount/);
    });
  }
});
