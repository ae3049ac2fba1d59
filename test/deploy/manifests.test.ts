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

const K8S = join(PROJECT_ROOT, 'infra/k8s');

/** The model's constructor taking any object: checking an unknown object is what validate() is for. */
const model =
  <T>(M: new (data: T) => { validate(): void }) =>
  (doc: object) =>
    new M(doc as T);

const MODELS: Record<string, (doc: object) => { validate(): void }> = {
  'v1/Namespace': model(Namespace),
  'v1/ServiceAccount': model(ServiceAccount),
  'v1/PersistentVolumeClaim': model(PersistentVolumeClaim),
  'rbac.authorization.k8s.io/v1/Role': model(Role),
  'rbac.authorization.k8s.io/v1/RoleBinding': model(RoleBinding),
  'batch/v1/Job': model(Job),
};

/** What every document of infra/k8s has (checked when read). */
type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [field: string]: unknown };
  [field: string]: unknown;
};

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function asManifest(file: string, doc: unknown): Manifest {
  if (
    !isRecord(doc) ||
    typeof doc.apiVersion !== 'string' ||
    typeof doc.kind !== 'string' ||
    !isRecord(doc.metadata) ||
    typeof doc.metadata.name !== 'string'
  ) {
    throw new Error(`${file}: not a Kubernetes object with apiVersion, kind and metadata.name`);
  }
  return doc as Manifest;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(f) ? [p] : [];
  });
}

function docs(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d): unknown => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
}

const isKustomization = (d: unknown) => isRecord(d) && String(d.apiVersion).startsWith('kustomize.config.k8s.io/');
const manifests = yamlFiles(K8S).flatMap((file) =>
  docs(file)
    .filter((d) => d && !isKustomization(d))
    .map((doc) => ({ file: relative(PROJECT_ROOT, file), doc: asManifest(file, doc) })),
);
/** The manifests of one kind (`Role.is`), typed as the kubernetes-models interface. */
const byKind = <T>(is: (value: unknown) => value is T): T[] => manifests.map((m): unknown => m.doc).filter(is);
/** The manifest of that kind and name; throws when there is none. */
const named = <T extends { metadata?: { name?: string } }>(is: (value: unknown) => value is T, name: string): T => {
  const found = byKind(is).find((d) => d.metadata?.name === name);
  if (!found) throw new Error(`no manifest named ${name}`);
  return found;
};
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

function validate(doc: { apiVersion?: unknown; kind?: unknown }): void {
  const type = `${String(doc.apiVersion)}/${String(doc.kind)}`;
  const build = MODELS[type];
  if (!build) throw new Error(`no schema for ${type}`);
  build(doc).validate();
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
    const role = structuredClone(named(Role.is, 'ci-agent-autoscaler'));
    const broken = { ...role, rules: [{ ...role.rules![0]!, verbs: 'list' }] };
    expect(() => validate(broken)).toThrow(/verbs/);
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
    const build = named(ServiceAccount.is, 'ci-build');
    expect(build).toMatchObject({ metadata: { namespace: 'ci-builds' }, automountServiceAccountToken: false });
    for (const rb of byKind(RoleBinding.is)) {
      expect(rb.subjects!.some((s) => s.kind === 'ServiceAccount' && s.name === 'ci-build')).toBe(false);
    }
    expect(named(ServiceAccount.is, 'gitlab-runner').metadata!.namespace).toBe('ci-agents');
    const role = named(Role.is, 'gitlab-runner-executor');
    expect(role.metadata!.namespace).toBe('ci-builds');
    expect(named(RoleBinding.is, 'gitlab-runner-executor')).toMatchObject({
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
    const sa = named(ServiceAccount.is, 'ci-agent');
    expect(sa.automountServiceAccountToken).toBe(false);
    for (const rb of byKind(RoleBinding.is)) {
      expect(rb.subjects!.some((s) => s.kind === 'ServiceAccount' && s.name === sa.metadata!.name)).toBe(false);
    }
  });

  it('the Role is bound to the group the EKS access entry maps the scaler to, and nothing is cluster-wide', () => {
    const access = parse(readFileSync(join(PROJECT_ROOT, 'infra/aws/eks-access.yml'), 'utf8'));
    const groups = access.Resources.ScalerAccessEntry.Properties.KubernetesGroups;
    const rb = named(RoleBinding.is, 'ci-agent-autoscaler');
    expect(rb.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: named(Role.is, 'ci-agent-autoscaler').metadata!.name,
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
        expect(pod.serviceAccountName).toBe(named(ServiceAccount.is, 'ci-agent').metadata!.name);
        expect(pod.automountServiceAccountToken).toBe(false);
      }
    });

    it(`${name}: with the shared build cache mounted, the Job is still valid and claims the PVC`, () => {
      const claim = byKind(PersistentVolumeClaim.is)[0]!.metadata!.name!;
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
    expect(byKind(PersistentVolumeClaim.is)[0]!.spec!.accessModes).toEqual(['ReadWriteMany']);
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

  // GitLab jobs run in their own pods (Kubernetes executor, namespace ci-builds), not in the
  // runner's: they use GitLab's native S3 cache on the same bucket (README, "Build cache").
  for (const name of ['buildkite', 'github'] as const) {
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
