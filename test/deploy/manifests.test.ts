/**
 * Every manifest in infra/k8s, every agent Job template, and every Job the scaler would build
 * from each template validated against the Kubernetes OpenAPI schema (kubernetes-models), since
 * no API server is available here; plus the names that tie the pieces together.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { V1Job, V1Volume } from '@kubernetes/client-node';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { allProviders } from '../../functions/core/providers/registry.js';
import { VARIABLES, type VariableSpec } from '../../functions/shared/config.js';
import { PROJECT_ROOT, serverlessParams } from '../../infra/aws/definitions.js';

const K8S = join(PROJECT_ROOT, 'infra/k8s');

/**
 * snapshot.storage.k8s.io/v1 VolumeSnapshot, a CRD that kubernetes-models does not ship: the v1
 * schema of kubernetes-csi/external-snapshotter (client/config/crd/
 * snapshot.storage.k8s.io_volumesnapshots.yaml): spec.source required, with exactly one of
 * persistentVolumeClaimName / volumeSnapshotContentName; volumeSnapshotClassName a non-empty
 * string. Fields the schema does not know are refused (the API server would prune them silently).
 */
type SnapshotDoc = { metadata?: { name?: unknown }; spec?: Record<string, unknown> | null };
class VolumeSnapshot {
  constructor(private readonly doc: SnapshotDoc) {}
  validate(): void {
    const { metadata, spec } = this.doc;
    const fail = (why: string): never => {
      throw new Error(`VolumeSnapshot ${String(metadata?.name)}: ${why}`);
    };
    if (typeof metadata?.name !== 'string' || !metadata.name) fail('metadata.name is required');
    if (typeof spec !== 'object' || spec === null) throw new Error(`VolumeSnapshot: spec is required`);
    for (const k of Object.keys(spec))
      if (!['source', 'volumeSnapshotClassName'].includes(k)) fail(`unknown spec.${k}`);
    if (
      'volumeSnapshotClassName' in spec &&
      (typeof spec.volumeSnapshotClassName !== 'string' || !spec.volumeSnapshotClassName)
    )
      fail('spec.volumeSnapshotClassName must be a non-empty string');
    const source = spec.source as Record<string, unknown> | null | undefined;
    if (typeof source !== 'object' || source === null) throw new Error('VolumeSnapshot: spec.source is required');
    const keys = Object.keys(source);
    const known = ['persistentVolumeClaimName', 'volumeSnapshotContentName'];
    if (keys.length !== 1 || !known.includes(keys[0]!) || typeof source[keys[0]!] !== 'string')
      fail('spec.source needs exactly one of persistentVolumeClaimName, volumeSnapshotContentName');
  }
}

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
  'batch/v1/CronJob': model(CronJob),
  'snapshot.storage.k8s.io/v1/VolumeSnapshot': model(VolumeSnapshot),
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
/** Every provider's built-in template (functions/core/providers/registry.ts). */
const TEMPLATES = allProviders().map((p) => p.template);
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
      const claim = named(PersistentVolumeClaim.is, 'ci-build-cache').metadata!.name!;
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
    expect(named(PersistentVolumeClaim.is, 'ci-build-cache').spec!.accessModes).toEqual(['ReadWriteMany']);
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

describe('Buildkite plugin cache hooks in the agent pods (issue 9, point 5)', () => {
  const kustomization = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'));
  type Generator = { name: string; files: string[]; options: { disableNameSuffixHash: boolean } };

  it('kustomize ships the hooks and the script in the ConfigMap the Buildkite template mounts as a hooks path', () => {
    const hooks = (kustomization.configMapGenerator as Generator[]).find((g) => g.name === 'ci-cache-buildkite-hooks');
    expect(hooks?.options.disableNameSuffixHash).toBe(true);
    const files = hooks!.files.map((f) => f.split('/').pop());
    // environment runs before the agent checks plugins out; pre-checkout is the first hook after.
    expect(files.sort()).toEqual(['ci-cache-plugins', 'environment', 'pre-checkout']);
    for (const f of hooks!.files) expect(statSync(join(K8S, f)).mode & 0o111, f).not.toBe(0);

    const pod = template('buildkite').spec!.template.spec!;
    const container = pod.containers[0]!;
    const volume = pod.volumes!.find((v) => v.configMap?.name === 'ci-cache-buildkite-hooks')!;
    expect(volume.configMap!.optional).toBe(true);
    expect(volume.configMap!.defaultMode).toBe(0o555);
    const mount = container.volumeMounts!.find((m) => m.name === volume.name)!;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    expect(env.BUILDKITE_ADDITIONAL_HOOKS_PATHS).toBe(mount.mountPath);
    // The hooks find the script where the template mounts it.
    for (const hook of ['environment', 'pre-checkout']) {
      const text = readFileSync(join(K8S, 'cache/buildkite-hooks', hook), 'utf8');
      expect(text).toContain(`\${CI_CACHE_HOOKS_DIR:-${mount.mountPath}}/ci-cache-plugins`);
    }
    // The staging area of the hook is on the plugins volume (a rename into place, not a copy).
    const plugins = container.volumeMounts!.find((m) => m.mountPath === env.BUILDKITE_PLUGINS_PATH);
    expect(plugins).toBeDefined();
  });
});

describe('per-agent build cache volumes cloned from a snapshot (issue 9, point 6)', () => {
  const DIR = join(K8S, 'cache-snapshot');
  const component = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'));
  const snapshot = (file: string) => parse(readFileSync(join(DIR, 'snapshots', file), 'utf8'));
  const cron = () => named(CronJob.is, 'ci-build-cache-refresh');
  const cronPod = () => cron().spec!.jobTemplate.spec!.template.spec!;

  /** The per-agent volume exactly as agents/buildkite.yaml ships it, commented out. */
  function shippedVolume(): V1Volume {
    const lines = readFileSync(join(K8S, 'agents', 'buildkite.yaml'), 'utf8').split('\n');
    const start = lines.findIndex((l) => /Or per agent/.test(l));
    const block: string[] = [];
    for (const line of lines.slice(start + 1)) {
      const m = /^ {8}# (.*)$/.exec(line);
      if (!m) break;
      if (/^- name: /.test(m[1]!) || block.length) block.push(m[1]!);
    }
    const volumes = parse(block.join('\n')) as V1Volume[];
    expect(volumes).toHaveLength(1);
    return volumes[0]!;
  }

  function withSnapshotCache(t: V1Job): V1Job {
    const job = structuredClone(t);
    const pod = job.spec!.template.spec!;
    pod.volumes = [...(pod.volumes ?? []), shippedVolume()];
    pod.containers[0]!.volumeMounts = [
      ...(pod.containers[0]!.volumeMounts ?? []),
      { name: 'build-cache', mountPath: '/cache' },
    ];
    return job;
  }

  it('is a kustomize component whose resources exist; its snapshots are valid VolumeSnapshots', () => {
    expect(component.kind).toBe('Component');
    for (const r of component.resources) expect(statSync(join(DIR, r)).isFile()).toBe(true);
    const generated = (
      component.configMapGenerator as { name: string; files: string[]; options: { disableNameSuffixHash: boolean } }[]
    ).find((g) => g.name === 'ci-build-cache-snapshots')!;
    expect(generated.files.sort()).toEqual(['snapshots/next.yaml', 'snapshots/stable.yaml']);
    expect(generated.options.disableNameSuffixHash).toBe(true);
    for (const file of ['next.yaml', 'stable.yaml']) expect(() => validate(snapshot(file))).not.toThrow();
    const broken = snapshot('stable.yaml');
    broken.spec.source.volumeSnapshotContentName = 'both';
    expect(() => validate(broken)).toThrow(/exactly one/);
  });

  it('each agent gets its own ReadWriteOnce volume cloned from the stable snapshot the refresh re-creates', () => {
    const volume = shippedVolume();
    const claim = volume.ephemeral!.volumeClaimTemplate!.spec;
    expect(claim.accessModes).toEqual(['ReadWriteOnce']);
    expect(claim.dataSource).toEqual({
      apiGroup: 'snapshot.storage.k8s.io',
      kind: 'VolumeSnapshot',
      name: snapshot('stable.yaml').metadata.name,
    });
    // Both snapshots are of the warm source volume, and the clone is at least as large.
    const source = named(PersistentVolumeClaim.is, 'ci-build-cache-warm-source');
    expect(source.spec!.accessModes).toEqual(['ReadWriteOnce']);
    for (const file of ['next.yaml', 'stable.yaml'])
      expect(snapshot(file).spec.source.persistentVolumeClaimName).toBe(source.metadata!.name);
    expect(claim.resources!.requests!.storage).toBe(source.spec!.resources!.requests!.storage);
    expect(claim.storageClassName).toBe(source.spec!.storageClassName);
  });

  for (const name of TEMPLATES) {
    it(`${name}: with the per-agent volume, the template and the Job the scaler builds are valid and keep it`, () => {
      const t = withSnapshotCache(template(name));
      expect(() => validate(t)).not.toThrow();
      const job = buildAgentJob(t, {
        namespace: 'ci-agents',
        queue: 'default',
        dispatchId: 'd-1',
        jobName: jobNameFor('default', 'd-1'),
        count: 3,
        ttlSecondsAfterFinished: 600,
        activeDeadlineSeconds: 3600,
      });
      expect(() => validate(job)).not.toThrow();
      const volumes = job.spec!.template.spec!.volumes!;
      expect(volumes.find((v) => v.name === 'build-cache')).toEqual(shippedVolume());
      const names = volumes.map((v) => v.name);
      expect(new Set(names).size, 'volume names are unique').toBe(names.length);
    });
  }

  it('the refresh snapshots the warm volume in order, then swaps the stable name, with namespaced rights only', () => {
    const pod = cronPod();
    expect(cron().spec!.concurrencyPolicy).toBe('Forbid');
    expect(pod.serviceAccountName).toBe('ci-build-cache-refresh');
    expect(pod.volumes!.find((v) => v.persistentVolumeClaim)!.persistentVolumeClaim!.claimName).toBe(
      'ci-build-cache-warm-source',
    );
    expect(pod.volumes!.find((v) => v.configMap)!.configMap!.name).toBe('ci-build-cache-snapshots');
    const init = pod.initContainers!;
    const steps = init.map((c) => `${c.name}: ${(c.args ?? []).slice(0, 3).join(' ')}`);
    expect(steps).toEqual([
      `warm: ${init[0]!.args!.slice(0, 3).join(' ')}`,
      'next-clear: delete volumesnapshot ci-build-cache-warm-next',
      'next-create: apply -f /snapshots/next.yaml',
      'next-wait: wait --for=jsonpath={.status.readyToUse}=true volumesnapshot/ci-build-cache-warm-next',
      'swap-delete: delete volumesnapshot ci-build-cache-warm',
      'swap-create: apply -f /snapshots/stable.yaml',
      'swap-wait: wait --for=jsonpath={.status.readyToUse}=true volumesnapshot/ci-build-cache-warm',
    ]);
    // Deleting the stable snapshot waits (its finalizers hold it while clones are provisioned).
    expect(init.find((c) => c.name === 'swap-delete')!.args).toContain('--wait=true');
    expect(init[0]!.args![0]).toMatch(/\bsync\b/);
    const role = named(Role.is, 'ci-build-cache-refresh');
    expect(role.rules).toEqual([
      { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: expect.any(Array) },
    ]);
    const binding = named(RoleBinding.is, 'ci-build-cache-refresh');
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: 'ci-agents' },
    ]);
    expect(named(ServiceAccount.is, String(pod.serviceAccountName))).toBeDefined();
  });
});
