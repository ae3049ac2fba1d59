/**
 * A real Kubernetes control plane for the tests and `npm start -- --cluster kwok`, from the
 * binaries tools/k8s/build.sh builds (npm run k8s:build): on loopback, free ports and a
 * temporary folder,
 *   etcd                     plain HTTP on 127.0.0.1 (its v3 JSON gateway serves compaction)
 *   kube-apiserver           TLS (a CA and serving certificate made here with the openssl CLI),
 *                            static bearer tokens, RBAC (+ Node) authorization, admission with
 *                            PodSecurity, ResourceQuota, LimitRanger, ServiceAccount and
 *                            OwnerReferencesPermissionEnforcement, ServiceAccount signing keys
 *   kube-controller-manager  job, garbage collector, ttl-after-finished, pod GC, resource quota,
 *                            ServiceAccount (+ tokens), namespace and root CA controllers, each
 *                            with its own ServiceAccount's credentials
 *   kube-scheduler
 *   kwok                     a few fake nodes and the pod stages of tools/k8s/kwok-stages.yaml
 * Identities (the apiserver's --token-auth-file): `admin` (system:masters) for the harness and
 * kwok only; `ci-agent-autoscaler-test` in the group `ci-agent-autoscaler`, the group
 * infra/k8s/rbac.yaml binds (the scaler's IAM role is mapped to that group on EKS): the scaler's
 * kubeconfig carries this one.
 *
 * TaintNodesByCondition is off: it taints every new Node not-ready until the node lifecycle
 * controller, which is not run, clears it; kwok's nodes are Ready from their first status.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
export const PROJECT_ROOT = resolve(HERE, '..', '..');
/** The group infra/k8s/rbac.yaml binds the scaler's Role to. */
export const SCALER_GROUP = 'ci-agent-autoscaler';
export const SCALER_USER = 'ci-agent-autoscaler-test';
/** The annotation our kwok stages read (tools/k8s/kwok-stages.yaml). */
export const FATE = 'ci-autoscaler.test/fate';
/** `hold`: a pod being deleted stays Running until the test reports its end (tools/k8s/kwok-stages.yaml). */
export const ON_DELETE = 'ci-autoscaler.test/on-delete';
export type Fate = 'run' | 'succeed' | 'fail' | 'pending' | 'image-pull-failure' | 'out-of-cpu';

export interface ControlPlaneOptions {
  /** Fake nodes (default 3), each 4 CPUs, 16 GiB and 110 pods. */
  readonly nodes?: number;
  /** Where the temporary folder is made (default the OS temp folder). */
  readonly dir?: string;
  /** Each component's output lines (default: kept in memory, printed when a start fails). */
  readonly onOutput?: (component: string, line: string) => void;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [field: string]: unknown;
}

export interface ControlPlane {
  /** https://127.0.0.1:port */
  readonly server: string;
  /** The apiserver's /version gitVersion, e.g. v1.35.4. */
  readonly version: string;
  /** ms from start() to a Ready node. */
  readonly startMs: number;
  readonly caPem: string;
  /** Its temporary folder (removed by stop()). */
  readonly dir: string;
  readonly adminKubeconfig: string;
  /** The scaler's kubeconfig (group ci-agent-autoscaler); `namespace` as its context's namespace. */
  scalerKubeconfig(namespace: string): string;
  /** An admin request (JSON in and out); throws KubeRequestError on a status >= 400. */
  request<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<T>;
  /** Server-side apply of each object, as admin (the field manager `kubectl`). */
  apply(objects: readonly KubeObject[]): Promise<void>;
  /** etcd compaction at its current revision, as the apiserver's compactor does: older list snapshots expire. */
  compact(): Promise<number>;
  /** Stops kube-apiserver (SIGTERM: it finishes the requests in flight); calls then fail to connect. */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again on the same port, with the same store; resolves when it is ready. */
  startApiserver(): Promise<void>;
  /** Output of each component so far (for a failing test's message). */
  output(component: string): string;
  /** Kills every process and removes the temporary folder. */
  stop(): Promise<void>;
}

export class KubeRequestError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${body.slice(0, 500)}`);
  }
}

/** The folder of the built binaries; throws naming `npm run k8s:build` when something is missing. */
export async function binDir(): Promise<string> {
  try {
    const { stdout } = await run('bash', [join(HERE, 'build.sh'), '--check']);
    return stdout.trim().split('\n').at(-1) ?? '';
  } catch (e) {
    const err = e as { stderr?: string };
    throw new Error(`the Kubernetes control plane is not built: ${err.stderr?.trim() || String(e)}`);
  }
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => ok(port));
    });
  });
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/** A CA, the apiserver's serving certificate (127.0.0.1, localhost, kubernetes.default.svc) and the ServiceAccount key pair. */
async function makeCerts(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    dir,
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=test-ca',
  );
  await openssl(
    dir,
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'apiserver.key',
    '-out',
    'apiserver.crt',
    '-days',
    '2',
    '-subj',
    '/CN=kube-apiserver',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1',
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'extendedKeyUsage=serverAuth',
  );
  await openssl(dir, 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key');
  await openssl(dir, 'pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

function kubeconfig(server: string, caPem: string, token: string, namespace = 'default'): string {
  // JSON is YAML: every client reads it as a kubeconfig.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'kwok',
          cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') },
        },
      ],
      users: [{ name: 'user', user: { token } }],
      contexts: [{ name: 'kwok', context: { cluster: 'kwok', user: 'user', namespace } }],
      'current-context': 'kwok',
    },
    null,
    2,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Component {
  proc: ChildProcess | undefined;
  lines: string[] = [];
  exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly bin: string,
    private readonly args: string[],
    private readonly onOutput?: (component: string, line: string) => void,
  ) {}

  start(): void {
    const proc = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const take = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        this.lines.push(line);
        if (this.lines.length > 400) this.lines.splice(0, 100);
        this.onOutput?.(this.name, line);
      }
    };
    proc.stdout?.on('data', take);
    proc.stderr?.on('data', take);
    this.exited = new Promise((r) =>
      proc.once('exit', (code, signal) => {
        this.lines.push(`[${this.name} exited: ${signal ?? code}]`);
        r();
      }),
    );
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    proc.kill('SIGTERM');
    const killed = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)]);
    if (!killed) {
      proc.kill('SIGKILL');
      await this.exited;
    }
  }

  killNow(): void {
    if (this.running) this.proc?.kill('SIGKILL');
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const started = Date.now();
  const bin = await binDir();
  const dir = mkdtempSync(join(options.dir ?? tmpdir(), 'kwok-plane-'));
  const components: Component[] = [];
  const killAll = () => {
    for (const c of components) c.killNow();
  };
  // A test run that dies leaves no process behind.
  process.once('exit', killAll);
  try {
    const [etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort] = await Promise.all(
      Array.from({ length: 6 }, freePort),
    );
    await makeCerts(dir);
    const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const token = () => randomBytes(24).toString('hex');
    const tokens = { admin: token(), scaler: token(), kcm: token(), scheduler: token() };
    writeFileSync(
      join(dir, 'tokens.csv'),
      [
        `${tokens.admin},admin,uid-admin,"system:masters"`,
        `${tokens.scaler},${SCALER_USER},uid-scaler,"${SCALER_GROUP}"`,
        `${tokens.kcm},system:kube-controller-manager,uid-kcm`,
        `${tokens.scheduler},system:kube-scheduler,uid-scheduler`,
        '',
      ].join('\n'),
    );
    const server = `https://127.0.0.1:${apiPort}`;
    const write = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const adminKubeconfig = write('admin.kubeconfig', kubeconfig(server, caPem, tokens.admin));
    const kcmKubeconfig = write('kcm.kubeconfig', kubeconfig(server, caPem, tokens.kcm));
    const schedKubeconfig = write('scheduler.kubeconfig', kubeconfig(server, caPem, tokens.scheduler));
    const comp = (name: string, args: string[]) => {
      const c = new Component(name, join(bin, name), args, options.onOutput);
      components.push(c);
      return c;
    };
    const f = (name: string) => join(dir, name);

    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = comp('etcd', [
      '--name=default',
      `--data-dir=${f('etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const apiserver = comp('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${f('apiserver-certs')}`,
      `--tls-cert-file=${f('apiserver.crt')}`,
      `--tls-private-key-file=${f('apiserver.key')}`,
      `--client-ca-file=${f('ca.crt')}`,
      `--token-auth-file=${f('tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,ResourceQuota,OwnerReferencesPermissionEnforcement,DefaultTolerationSeconds,Priority',
      '--disable-admission-plugins=TaintNodesByCondition',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${f('sa.pub')}`,
      `--service-account-signing-key-file=${f('sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      '--v=0',
    ]);
    const kcm = comp('kube-controller-manager', [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      '--controllers=job-controller,garbage-collector-controller,ttl-after-finished-controller,pod-garbage-collector-controller,resourcequota-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,root-ca-certificate-publisher-controller',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${f('sa.key')}`,
      `--root-ca-file=${f('ca.crt')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${f('kcm-certs')}`,
      // Faster than the defaults: the tests wait for the garbage collector and the quota.
      '--resource-quota-sync-period=10s',
      ...(process.env.K8S_KCM_V ? [`--v=${process.env.K8S_KCM_V}`] : []),
      '--v=0',
    ]);
    const scheduler = comp('kube-scheduler', [
      `--kubeconfig=${schedKubeconfig}`,
      `--authentication-kubeconfig=${schedKubeconfig}`,
      `--authorization-kubeconfig=${schedKubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${schedPort}`,
      `--cert-dir=${f('scheduler-certs')}`,
      '--v=0',
    ]);
    const kwok = comp('kwok', [
      `--kubeconfig=${adminKubeconfig}`,
      `--config=${join(HERE, 'kwok-stages.yaml')}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      `--server-address=127.0.0.1:${kwokPort}`,
      '--node-lease-duration-seconds=40',
      '--cidr=10.244.0.0/16',
      '--node-ip=10.1.0.1',
    ]);

    const request = async <T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> => {
      const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      return new Promise<T>((ok, fail) => {
        const req = https.request(
          `${server}${path}`,
          {
            method,
            ca: caPem,
            agent: false,
            headers: {
              authorization: `Bearer ${tokens.admin}`,
              accept: 'application/json',
              ...(payload === undefined ? {} : { 'content-type': contentType ?? 'application/json' }),
            },
            timeout: 10_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              if ((res.statusCode ?? 500) >= 400)
                fail(new KubeRequestError(res.statusCode ?? 500, text, `${method} ${path}`));
              else if (!`${res.headers['content-type']}`.includes('json')) ok(text as T);
              else {
                try {
                  ok(JSON.parse(text) as T);
                } catch (e) {
                  fail(e);
                }
              }
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
        req.on('error', fail);
        req.end(payload);
      });
    };

    const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs: number, watched: Component[]) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const dead = watched.find((c) => !c.running);
        if (dead)
          throw new Error(`${dead.name} exited while waiting for ${what}:\n${dead.lines.slice(-30).join('\n')}`);
        if (await check().catch(() => false)) return;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(200);
      }
    };
    const apiserverReady = () =>
      waitFor(
        'kube-apiserver /readyz',
        async () => {
          await request('GET', '/readyz');
          return true;
        },
        60_000,
        [etcd, apiserver],
      );

    etcd.start();
    await waitFor(
      'etcd',
      async () => (await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1000) })).ok,
      30_000,
      [etcd],
    );
    apiserver.start();
    await apiserverReady();
    kcm.start();
    scheduler.start();
    kwok.start();
    const nodes = options.nodes ?? 3;
    for (let i = 0; i < nodes; i++) {
      await request('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name: `kwok-node-${i}`,
          annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: { 'kubernetes.io/hostname': `kwok-node-${i}`, 'kubernetes.io/os': 'linux', type: 'kwok' },
        },
        status: { capacity: { cpu: '4', memory: '16Gi', pods: '110' } },
      });
    }
    // Ready nodes, and the default ServiceAccount the controllers make in every namespace.
    await waitFor(
      'a Ready kwok node and the default ServiceAccount',
      async () => {
        const list = await request<{ items: { status?: { conditions?: { type: string; status: string }[] } }[] }>(
          'GET',
          '/api/v1/nodes',
        );
        const ready = list.items.some((n) =>
          n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        if (!ready) return false;
        await request('GET', '/api/v1/namespaces/default/serviceaccounts/default');
        return true;
      },
      60_000,
      components,
    );
    const version = (await request<{ gitVersion: string }>('GET', '/version')).gitVersion;
    const startMs = Date.now() - started;

    const plane: ControlPlane = {
      server,
      version,
      startMs,
      caPem,
      dir,
      adminKubeconfig,
      scalerKubeconfig(namespace) {
        return write(`scaler-${namespace}.kubeconfig`, kubeconfig(server, caPem, tokens.scaler, namespace));
      },
      request,
      async apply(objects) {
        for (const o of objects) {
          await request(
            'PATCH',
            `${objectPath(o)}?fieldManager=kubectl&force=true`,
            JSON.stringify(o),
            'application/apply-patch+yaml',
          );
        }
      },
      async compact() {
        // What kube-apiserver's own compactor does (k8s.io/apiserver storage/etcd3/compact.go):
        // record the revision under compact_rev_key, which every apiserver watches (its watch
        // cache then drops older list snapshots, within its 15 s poll), and compact etcd there.
        // Through etcd's v3 JSON gateway: bytes are base64, int64 fields strings.
        const post = async (path: string, body: unknown) => {
          const res = await fetch(`${etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
          if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${await res.text()}`);
          return (await res.json()) as { header?: { revision?: string } };
        };
        const b64 = (text: string) => Buffer.from(text).toString('base64');
        const current = await post('/v3/kv/range', { key: b64('compact_rev_key') });
        const revision = Number(current.header?.revision ?? 0);
        await post('/v3/kv/put', { key: b64('compact_rev_key'), value: b64(String(revision)) });
        await post('/v3/kv/compaction', { revision: String(revision), physical: true });
        return revision;
      },
      async stopApiserver() {
        await apiserver.stop();
      },
      async startApiserver() {
        apiserver.start();
        await apiserverReady();
      },
      output(component) {
        return components.find((c) => c.name === component)?.lines.join('\n') ?? '';
      },
      async stop() {
        process.removeListener('exit', killAll);
        // Clients first, the store last.
        for (const c of [kwok, scheduler, kcm, apiserver, etcd]) await c.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return plane;
  } catch (e) {
    const tails = components
      .filter((c) => c.lines.length > 0)
      .map((c) => `--- ${c.name}\n${c.lines.slice(-15).join('\n')}`)
      .join('\n');
    for (const c of components) await c.stop();
    process.removeListener('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the control plane did not start: ${e instanceof Error ? e.message : String(e)}\n${tails}`);
  }
}

/** Resources the harness applies: kind -> [API path prefix, plural, namespaced]. */
const RESOURCES: Record<string, [string, string, boolean]> = {
  'v1/Namespace': ['/api/v1', 'namespaces', false],
  'v1/Node': ['/api/v1', 'nodes', false],
  'v1/ServiceAccount': ['/api/v1', 'serviceaccounts', true],
  'v1/ConfigMap': ['/api/v1', 'configmaps', true],
  'v1/Secret': ['/api/v1', 'secrets', true],
  'v1/ResourceQuota': ['/api/v1', 'resourcequotas', true],
  'v1/LimitRange': ['/api/v1', 'limitranges', true],
  'v1/PersistentVolumeClaim': ['/api/v1', 'persistentvolumeclaims', true],
  'rbac.authorization.k8s.io/v1/Role': ['/apis/rbac.authorization.k8s.io/v1', 'roles', true],
  'rbac.authorization.k8s.io/v1/RoleBinding': ['/apis/rbac.authorization.k8s.io/v1', 'rolebindings', true],
  'rbac.authorization.k8s.io/v1/ClusterRole': ['/apis/rbac.authorization.k8s.io/v1', 'clusterroles', false],
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': [
    '/apis/rbac.authorization.k8s.io/v1',
    'clusterrolebindings',
    false,
  ],
  'batch/v1/Job': ['/apis/batch/v1', 'jobs', true],
};

export function objectPath(o: KubeObject): string {
  const r = RESOURCES[`${o.apiVersion}/${o.kind}`];
  if (!r) throw new Error(`the harness cannot apply ${o.apiVersion} ${o.kind} (tools/k8s/control-plane.ts RESOURCES)`);
  const [prefix, plural, namespaced] = r;
  if (!namespaced) return `${prefix}/${plural}/${o.metadata.name}`;
  if (!o.metadata.namespace) throw new Error(`${o.kind} ${o.metadata.name} has no namespace`);
  return `${prefix}/namespaces/${o.metadata.namespace}/${plural}/${o.metadata.name}`;
}

/**
 * The objects `kubectl apply -k <dir>` applies, for the kustomization features infra/k8s uses:
 * `resources` (files or folders with their own kustomization), `namespace` (set on namespaced
 * objects, a Namespace renamed to it, ServiceAccount subjects of bindings moved to it) and
 * `configMapGenerator` with `files` and `literals` and `disableNameSuffixHash: true`. Anything
 * else is refused by name rather than half applied. `namespace` overrides the kustomization's
 * own, as a deployer editing it for another KUBE_NAMESPACE would.
 */
export function kustomize(dir: string, namespace?: string): KubeObject[] {
  const kfile = ['kustomization.yaml', 'kustomization.yml', 'Kustomization']
    .map((n) => join(dir, n))
    .find((p) => existsSync(p));
  if (!kfile) throw new Error(`no kustomization in ${dir}`);
  const k = parseAllDocuments(readFileSync(kfile, 'utf8'))[0]?.toJS() as Record<string, unknown>;
  const known = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'configMapGenerator']);
  const unknown = Object.keys(k).filter((key) => !known.has(key));
  if (unknown.length > 0) throw new Error(`${kfile}: the harness does not implement ${unknown.join(', ')}`);
  const objects: KubeObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const path = join(dir, r);
    if (statSync(path).isDirectory()) objects.push(...kustomize(path));
    else
      for (const d of parseAllDocuments(readFileSync(path, 'utf8'))) {
        const o = d.toJS() as KubeObject | null;
        if (o) objects.push(o);
      }
  }
  for (const g of (k.configMapGenerator as Record<string, unknown>[] | undefined) ?? []) {
    const opts = (g.options ?? {}) as Record<string, unknown>;
    if (opts.disableNameSuffixHash !== true)
      throw new Error(
        `${kfile}: configMapGenerator ${String(g.name)}: only disableNameSuffixHash: true is implemented`,
      );
    const data: Record<string, string> = {};
    for (const file of (g.files as string[] | undefined) ?? []) {
      const [key, path] = file.includes('=') ? (file.split('=', 2) as [string, string]) : [basename(file), file];
      data[key] = readFileSync(join(dir, path), 'utf8');
    }
    for (const literal of (g.literals as string[] | undefined) ?? []) {
      const at = literal.indexOf('=');
      data[literal.slice(0, at)] = literal.slice(at + 1);
    }
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: String(g.name) }, data });
  }
  const ns = namespace ?? (k.namespace as string | undefined);
  if (!ns) return objects;
  return objects.map((o) => {
    const out = structuredClone(o);
    if (o.kind === 'Namespace') out.metadata.name = ns;
    else if (RESOURCES[`${o.apiVersion}/${o.kind}`]?.[2] ?? true) out.metadata.namespace = ns;
    if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') {
      for (const s of (out.subjects as { kind: string; namespace?: string }[] | undefined) ?? [])
        if (s.kind === 'ServiceAccount') s.namespace = ns;
    }
    return out;
  });
}
