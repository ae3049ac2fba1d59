/**
 * GitHub Actions runners registered just in time, one single-use configuration per agent.
 *
 * For a dispatch of N agents of a GitHub queue (a queue whose Job template mounts the volume
 * `jitconfig`), before its Job is created, the scaler calls generate-jitconfig N times (runner
 * names `<tag>-<queue>-<dispatch hash>-<index>-<nonce>`, the queue's labels) and puts the N
 * configurations in the Secret `<job name>-jit` (key = completion index; a batch whose
 * configurations exceed the 1 MiB a Secret holds is split over `<job name>-jit-1`, ... and the
 * volume projects them all). The Secrets exist BEFORE the Job, so no pod waits on a missing
 * Secret (ContainerCreating, FailedMount); once the Job exists each Secret gets the Job as its
 * owner, so the garbage collector deletes it with the Job. A Job create the server refuses
 * deletes them again. The template's init container copies its own
 * index's file into a volume only its pod sees; the runner container never mounts the Secret
 * (see infra/k8s/agents/github.yaml). No configuration appears in a Job or pod spec, a log line
 * or a metric: only runner names and ids do.
 *
 * Configurations minted for a dispatch are kept in memory until its Secret exists, so a retry
 * after a failure (GitHub rate limit half-way through a batch, Secret create failed) mints only
 * what is missing. What a crash loses is an offline registration with no pod: the sweep removes
 * it (at most every `sweepIntervalMs`): a runner named with this deployment's tag, offline, not
 * busy, whose dispatch has neither a pending intent nor a live Job (or whose pod has ended), at
 * two sweeps in a row (a concurrent scaler may have just registered it for a Job on its way).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { V1Job, V1Pod, V1Volume } from '@kubernetes/client-node';
import {
  DISPATCH_ID_LABEL,
  jobNameOf,
  labelSafe,
  liveAgents,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  QUEUE_LABEL,
  queueOf,
} from '../../core/agent-job.js';
import { defaultRunnerLabels } from '../../core/routing.js';
import type { DispatchRecord } from '../../core/stores.js';
import type { ClusterPort, DispatchHooks, ScalerLog, TickView } from '../../scaler/ports.js';
import { describeError } from '../../shared/errors.js';
import type { JitRunner, RunnersApi } from './runners-api.js';

/** The template's volume the scaler points at the dispatch's Secret. */
export const JIT_VOLUME = 'jitconfig';

/** Whether a Job template runs just-in-time GitHub runners (it mounts the `jitconfig` volume). */
export function usesJitConfig(template: V1Job): boolean {
  return (template.spec?.template?.spec?.volumes ?? []).some((v) => v.name === JIT_VOLUME && v.secret !== undefined);
}

/** The name of the dispatch's `part`th Secret (0: `<job>-jit`, then `<job>-jit-1`, ...). */
export function jitSecretName(jobName: string, part = 0): string {
  return part === 0 ? `${jobName}-jit` : `${jobName}-jit-${part}`;
}

/**
 * The most data one Secret of ours holds: a Secret holds at most 1 MiB (corev1.MaxSecretSize,
 * its decoded values summed); keys are counted too, to stay clear of it.
 */
export const SECRET_DATA_LIMIT = 1024 * 1024;

/**
 * The configurations (index -> encoded config) in as few Secrets' data as SECRET_DATA_LIMIT
 * allows, in index order; throws for one configuration that alone exceeds it.
 */
export function splitJitData(configs: readonly string[], limit = SECRET_DATA_LIMIT): Record<string, string>[] {
  const parts: Record<string, string>[] = [];
  let part: Record<string, string> = {};
  let size = 0;
  configs.forEach((config, i) => {
    const key = String(i);
    const bytes = key.length + Buffer.byteLength(config, 'utf8');
    if (bytes > limit)
      throw new Error(`GitHub just-in-time configuration ${i} is ${bytes} bytes: over a Secret's ${limit}`);
    if (size + bytes > limit) {
      parts.push(part);
      part = {};
      size = 0;
    }
    part[key] = Buffer.from(config).toString('base64');
    size += bytes;
  });
  parts.push(part);
  return parts;
}

/**
 * The Job with its `jitconfig` volume pointing at the dispatch's Secrets (a copy): the one Secret
 * as a `secret` volume, several as one `projected` volume (their keys, the indexes, are distinct).
 */
export function withJitSecret(job: V1Job, parts = 1): V1Job {
  const name = job.metadata?.name;
  const podSpec = job.spec?.template?.spec;
  if (!name || !podSpec || !job.spec?.template) throw new TypeError('agent Job without name or pod spec');
  const names = Array.from({ length: parts }, (_, i) => jitSecretName(name, i));
  return {
    ...job,
    spec: {
      ...job.spec,
      template: {
        ...job.spec.template,
        spec: {
          ...podSpec,
          volumes: (podSpec.volumes ?? []).map((v): V1Volume => {
            if (v.name !== JIT_VOLUME) return v;
            if (names.length === 1) return { name: v.name, secret: { ...v.secret, secretName: jitSecretName(name) } };
            const mode = v.secret?.defaultMode;
            return {
              name: v.name,
              projected: {
                ...(mode !== undefined ? { defaultMode: mode } : {}),
                sources: names.map((n) => ({ secret: { name: n } })),
              },
            };
          }),
        },
      },
    },
  };
}

const hex = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);

/** This deployment's runner-name prefix: runners with it are ours to sweep. */
export function runnerTag(deployment: string): string {
  return `cia${hex(deployment, 5)}`;
}

/** The dispatch part of a runner name: the hash that ends the Job's name. */
function dispatchKey(jobName: string): string {
  return jobName.slice(-16);
}

export function runnerName(tag: string, queue: string, jobName: string, index: number, nonce: string): string {
  const slug = queue
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 20)
    .replace(/-+$/, '');
  return [tag, ...(slug ? [slug] : []), dispatchKey(jobName), String(index), nonce].join('-');
}

const RUNNER_NAME = /^(cia[0-9a-f]{5})-(?:.*-)?([0-9a-f]{16})-(\d+)-[0-9a-f]{4}$/;

export function parseRunnerName(name: string): { tag: string; key: string; index: number } | undefined {
  const m = RUNNER_NAME.exec(name);
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  return { tag: m[1], key: m[2], index: Number(m[3]) };
}

export interface JitRunnersOptions {
  readonly api: RunnersApi;
  readonly cluster: Pick<ClusterPort, 'createJobSecret' | 'createSecret' | 'ownSecret' | 'deleteSecret'>;
  readonly runnerGroupId: number;
  /** The queues whose agents are just-in-time GitHub runners. */
  readonly isJitQueue: (queue: string) => boolean;
  /** The labels a queue's runners carry (default: self-hosted, linux, x64, <queue>). */
  readonly labelsFor?: (queue: string) => readonly string[];
  /** This deployment's identity (the ledger table). */
  readonly deployment: string;
  readonly log: ScalerLog;
  /** Least time between two sweeps of offline runners (default 5 min). */
  readonly sweepIntervalMs?: number;
  /** generate-jitconfig calls in flight at once for one batch (default 4). */
  readonly concurrency?: number;
}

export class JitRunners implements DispatchHooks {
  private readonly minted = new Map<string, (JitRunner | undefined)[]>();
  /** Per Job, how many Secrets this process created for it before the Job (not owned yet). */
  private readonly unowned = new Map<string, number>();
  private readonly tag: string;
  private lastSweep = Number.NEGATIVE_INFINITY;
  /** Runners that looked orphaned at the last sweep: removed if they still do at the next. */
  private suspects = new Set<number>();

  constructor(private readonly options: JitRunnersOptions) {
    this.tag = runnerTag(options.deployment);
  }

  /** Mints what the dispatch still lacks; throws (GitHubRetryableError, ...) if any call failed. */
  private async mint(dispatch: DispatchRecord): Promise<JitRunner[]> {
    const { api, runnerGroupId, log } = this.options;
    const labels = [...(this.options.labelsFor ?? defaultRunnerLabels)(dispatch.queue)];
    const configs = this.minted.get(dispatch.jobName) ?? Array.from({ length: dispatch.count }, () => undefined);
    this.minted.set(dispatch.jobName, configs);
    const missing = configs.flatMap((c, i) => (c ? [] : [i]));
    let failure: unknown;
    const worker = async () => {
      for (let i = missing.shift(); i !== undefined && failure === undefined; i = missing.shift()) {
        const name = runnerName(this.tag, dispatch.queue, dispatch.jobName, i, randomBytes(2).toString('hex'));
        try {
          configs[i] = await api.generateJitConfig({ name, runnerGroupId, labels });
        } catch (e) {
          failure ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 4, missing.length) }, worker));
    const done = configs.filter((c): c is JitRunner => c !== undefined);
    if (failure !== undefined) {
      log.warn('GitHub runner registration incomplete; the dispatch is retried on a later tick', {
        queue: dispatch.queue,
        jobName: dispatch.jobName,
        registered: done.length,
        count: dispatch.count,
        error: describeError(failure),
      });
      throw failure;
    }
    return done;
  }

  private secretFor(dispatch: DispatchRecord, part: number, data: Record<string, string>) {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: jitSecretName(dispatch.jobName, part),
        labels: {
          [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
          [QUEUE_LABEL]: labelSafe(dispatch.queue),
          [DISPATCH_ID_LABEL]: labelSafe(dispatch.dispatchId),
        },
      },
      // The file /jit/<index> holds exactly GitHub's encoded_jit_config.
      data,
    };
  }

  /** Mints the runners, then creates their Secrets (no owner yet): the Job is created after them. */
  async beforeCreate(dispatch: DispatchRecord, job: V1Job): Promise<V1Job> {
    if (!this.options.isJitQueue(dispatch.queue)) return job;
    const create = this.options.cluster.createSecret;
    if (!create) throw new Error('the cluster adapter cannot create Secrets');
    const configs = await this.mint(dispatch);
    const parts = splitJitData(configs.map((c) => c.encodedJitConfig));
    // In order: a Secret that exists is one a retry of this dispatch created (same configurations).
    for (const [part, data] of parts.entries()) await create(this.secretFor(dispatch, part, data));
    this.unowned.set(dispatch.jobName, parts.length);
    this.options.log.info('GitHub runners registered just in time', {
      queue: dispatch.queue,
      jobName: dispatch.jobName,
      secrets: parts.map((_, i) => jitSecretName(dispatch.jobName, i)),
      runners: configs.map((c) => c.name),
    });
    return withJitSecret(job, parts.length);
  }

  /**
   * The Job exists: it becomes the owner of its Secrets. Without a record of them (another
   * process made them), every `<job>-jit[-n]` there is adopted; if not even the first is there,
   * they are made again, owned by the Job at once.
   */
  async afterCreate(dispatch: DispatchRecord): Promise<void> {
    if (!this.options.isJitQueue(dispatch.queue)) return;
    const { ownSecret, createJobSecret } = this.options.cluster;
    if (!ownSecret || !createJobSecret) throw new Error('the cluster adapter cannot own Secrets');
    const known = this.unowned.get(dispatch.jobName);
    let owned = 0;
    for (let part = 0; known === undefined || part < known; part++) {
      try {
        await ownSecret(jitSecretName(dispatch.jobName, part), dispatch.jobName);
        owned++;
      } catch (e) {
        if ((e as { status?: unknown }).status !== 404 || known !== undefined) throw e;
        break;
      }
    }
    if (owned === 0) {
      // The Secrets never arrived (made before this ordering, or deleted): the Job's pods wait
      // on them, so they are made now, owned by the Job.
      const configs = await this.mint(dispatch);
      const parts = splitJitData(configs.map((c) => c.encodedJitConfig));
      for (const [part, data] of parts.entries())
        await createJobSecret(dispatch.jobName, this.secretFor(dispatch, part, data));
      this.options.log.warn("GitHub runners' Secrets were missing for an existing Job; created", {
        queue: dispatch.queue,
        jobName: dispatch.jobName,
        secrets: parts.map((_, i) => jitSecretName(dispatch.jobName, i)),
      });
    }
    this.unowned.delete(dispatch.jobName);
    this.minted.delete(dispatch.jobName);
  }

  /** The server refused the Job: its Secrets (made before it, owned by nobody) are deleted. */
  async createFailed(dispatch: DispatchRecord): Promise<void> {
    if (!this.options.isJitQueue(dispatch.queue)) return;
    await this.dropSecrets(dispatch.jobName);
  }

  private async dropSecrets(jobName: string): Promise<void> {
    const parts = this.unowned.get(jobName);
    const remove = this.options.cluster.deleteSecret;
    if (parts === undefined || !remove) return;
    for (let part = 0; part < parts; part++) await remove(jitSecretName(jobName, part));
    this.unowned.delete(jobName);
  }

  private sweepDue(now: number): boolean {
    return now - this.lastSweep >= (this.options.sweepIntervalMs ?? 300_000);
  }

  /**
   * The Jobs whose pods the sweep needs: none between sweeps; else our live Jobs of GitHub queues
   * with an ended agent (only there can an index have ended while its Job lives on).
   */
  podsToSweep(view: { readonly jobs: readonly V1Job[]; readonly now: number }): string[] | undefined {
    if (!this.sweepDue(view.now)) return undefined;
    return view.jobs.flatMap((j) => {
      const name = j.metadata?.name;
      const queue = queueOf(j);
      const ended = (j.status?.succeeded ?? 0) + (j.status?.failed ?? 0);
      return name && queue !== undefined && this.options.isJitQueue(queue) && liveAgents(j) > 0 && ended > 0
        ? [name]
        : [];
    });
  }

  /** Removes offline registrations of ours whose agents are gone (at most every sweepIntervalMs). */
  async housekeeping(view: TickView): Promise<void> {
    // Configurations minted for a dispatch that is gone (its intent was released) are dropped.
    const known = new Set([...view.jobs.map((j) => j.jobName), ...view.dispatches.map((d) => d.jobName)]);
    for (const jobName of this.minted.keys()) if (!known.has(jobName)) this.minted.delete(jobName);
    // ...and their Secrets, made before a Job that never came, are deleted.
    for (const jobName of [...this.unowned.keys()])
      if (!known.has(jobName))
        await this.dropSecrets(jobName).catch((e: unknown) =>
          this.options.log.warn('Secrets of a released dispatch not deleted; tried again next tick', {
            jobName,
            error: describeError(e),
          }),
        );
    if (!this.sweepDue(view.now)) return;
    this.lastSweep = view.now;
    const { api, log } = this.options;
    const byKey = new Map<string, { live: number; intent: boolean; ended: Set<number>; active: Set<number> }>();
    const entry = (jobName: string) => {
      const k = dispatchKey(jobName);
      let e = byKey.get(k);
      if (!e) {
        e = { live: 0, intent: false, ended: new Set(), active: new Set() };
        byKey.set(k, e);
      }
      return e;
    };
    for (const j of view.jobs) entry(j.jobName).live += j.live;
    for (const d of view.dispatches) {
      if (d.status === 'intent') entry(d.jobName).intent = true;
    }
    for (const pod of view.pods ?? []) {
      const job = jobNameOf(pod);
      const index = Number(pod.metadata?.labels?.['batch.kubernetes.io/job-completion-index']);
      if (!job || !Number.isInteger(index)) continue;
      const e = entry(job);
      if (isEnded(pod)) e.ended.add(index);
      else e.active.add(index);
    }
    const runners = await api.listRunners();
    let removed = 0;
    const suspects = new Set<number>();
    for (const r of runners) {
      const parsed = parseRunnerName(r.name);
      if (!parsed || parsed.tag !== this.tag || r.busy || r.status !== 'offline') continue;
      const e = byKey.get(parsed.key);
      const keep =
        e !== undefined && (e.intent || (e.live > 0 && !(e.ended.has(parsed.index) && !e.active.has(parsed.index))));
      if (keep) continue;
      // Two sweeps apart: a concurrent scaler may have registered it after this tick's snapshot,
      // for a dispatch whose Job it is about to create.
      suspects.add(r.id);
      if (!this.suspects.has(r.id)) continue;
      try {
        await api.deleteRunner(r.id);
        removed++;
      } catch (err) {
        log.warn('offline GitHub runner not removed; tried again at the next sweep', {
          runner: r.name,
          error: describeError(err),
        });
        break;
      }
    }
    this.suspects = suspects;
    if (removed > 0) log.info('offline GitHub runners without a pod removed', { removed });
  }
}

function isEnded(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}
