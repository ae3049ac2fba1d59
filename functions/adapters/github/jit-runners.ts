/**
 * GitHub Actions runners registered just in time, one single-use configuration per agent.
 *
 * For a dispatch of N agents of a GitHub queue (a queue whose Job template mounts the volume
 * `jitconfig`), before its Job is created, the scaler calls generate-jitconfig N times (runner
 * names `<tag>-<queue>-<dispatch hash>-<index>-<nonce>`, the queue's labels); after, it puts the
 * N configurations in ONE Secret `<job name>-jit` (key = completion index) owned by the Job, so
 * the garbage collector deletes it with the Job. The template's init container copies its own
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
import type { V1Job, V1Pod } from '@kubernetes/client-node';
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

export function jitSecretName(jobName: string): string {
  return `${jobName}-jit`;
}

/** The Job with its `jitconfig` volume pointing at the dispatch's Secret (a copy). */
export function withJitSecret(job: V1Job): V1Job {
  const name = job.metadata?.name;
  const podSpec = job.spec?.template?.spec;
  if (!name || !podSpec || !job.spec?.template) throw new TypeError('agent Job without name or pod spec');
  return {
    ...job,
    spec: {
      ...job.spec,
      template: {
        ...job.spec.template,
        spec: {
          ...podSpec,
          volumes: (podSpec.volumes ?? []).map((v) =>
            v.name === JIT_VOLUME ? { name: v.name, secret: { ...v.secret, secretName: jitSecretName(name) } } : v,
          ),
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
  readonly cluster: Pick<ClusterPort, 'createJobSecret'>;
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

  async beforeCreate(dispatch: DispatchRecord, job: V1Job): Promise<V1Job> {
    if (!this.options.isJitQueue(dispatch.queue)) return job;
    await this.mint(dispatch);
    return withJitSecret(job);
  }

  async afterCreate(dispatch: DispatchRecord): Promise<void> {
    if (!this.options.isJitQueue(dispatch.queue)) return;
    const create = this.options.cluster.createJobSecret;
    if (!create) throw new Error('the cluster adapter cannot create Secrets');
    const configs = await this.mint(dispatch);
    const result = await create(dispatch.jobName, {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: jitSecretName(dispatch.jobName),
        labels: {
          [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
          [QUEUE_LABEL]: labelSafe(dispatch.queue),
          [DISPATCH_ID_LABEL]: labelSafe(dispatch.dispatchId),
        },
      },
      // The file /jit/<index> holds exactly GitHub's encoded_jit_config.
      data: Object.fromEntries(configs.map((c, i) => [String(i), Buffer.from(c.encodedJitConfig).toString('base64')])),
    });
    this.minted.delete(dispatch.jobName);
    this.options.log.info('GitHub runners registered just in time', {
      queue: dispatch.queue,
      jobName: dispatch.jobName,
      secret: jitSecretName(dispatch.jobName),
      runners: configs.map((c) => c.name),
      ...(result === 'exists' ? { note: 'secret already there (retried dispatch)' } : {}),
    });
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
