/**
 * The CI provider's side of the embedded simulated cluster. A real agent pod (buildkite-agent,
 * a GitHub runner, a GitLab runner) takes a job from its queue, and the CI provider then sends
 * the `started` webhook, and `finished` when it is done. The fake cluster's pods run no agent,
 * so this plays that part, honestly and over the same path as a real provider:
 *  - it learns which CI jobs are waiting from the events the local webhook accepted;
 *  - when an agent pod of a queue is Running and has no CI job yet, it gives it the oldest
 *    waiting CI job of that queue (as a real agent takes any job from its queue) and POSTs the
 *    provider's SIGNED `started` webhook to the local endpoint;
 *  - when that pod has finished (Succeeded, Failed or gone), it POSTs the signed `finished`.
 * The pod's lifetime is the simulated cluster's (start-up delay, then `runMs`); an agent that
 * gets a CI job late runs it for the rest of that time. Used with the embedded cluster and with
 * the kwok control plane (its pods run no agent either; kube-agent-pods.ts lists them): with
 * a real cluster, real agents talk to the real CI provider.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { QUEUE_ANNOTATION } from '../../functions/core/agent-job.js';
import { type JobEvent, jobKey, type QueuedJobEvent } from '../../functions/core/job-event.js';
import { type CiJob, delivery, type LocalSecrets, post, type Transition } from './ci-webhooks.js';

export interface CiJobRecord {
  readonly provider: JobEvent['provider'];
  readonly jobId: string;
  readonly queue: string;
  /** Epoch ms the local webhook accepted its `scheduled` event. */
  scheduledAt: number;
  /** Epoch ms its agent pod was seen Running and took it. */
  agentRunningAt?: number;
  pod?: string;
  startedAt?: number;
  finishedAt?: number;
  cancelledAt?: number;
}

export interface SimulatedCiOptions {
  readonly webhookUrl: () => string;
  readonly secrets: LocalSecrets;
  /** Agent pods (Running ones only are asked for). */
  readonly runningPods: () => V1Pod[];
  readonly intervalMs?: number;
  readonly onError?: (message: string) => void;
  readonly now?: () => number;
}

export class SimulatedCi {
  private readonly records = new Map<string, CiJobRecord>();
  private readonly waiting = new Map<string, string[]>();
  /** pod name -> key of the CI job it runs ('' = idle agent). */
  private readonly pods = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly options: SimulatedCiOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Every event the local webhook accepted (called before it is sent to SQS). A GitLab event
   * carries no queue (the Job Hook has no job tags): `queueOf` says where the simulated GitLab
   * put the job, as the scaler's lookup will.
   */
  observe(event: QueuedJobEvent, queueOf: (event: QueuedJobEvent) => string | undefined = (e) => e.queue): void {
    const queue = queueOf(event);
    if (queue === undefined) return;
    this.record({ ...event, queue });
  }

  private record(event: JobEvent): void {
    const key = jobKey(event);
    const record = this.records.get(key);
    if (event.kind === 'scheduled') {
      if (record) return; // a duplicate delivery
      this.records.set(key, {
        provider: event.provider,
        jobId: event.jobId,
        queue: event.queue,
        scheduledAt: this.now(),
      });
      const list = this.waiting.get(event.queue) ?? [];
      list.push(key);
      this.waiting.set(event.queue, list);
      return;
    }
    if (!record) return;
    // Started/finished/cancelled by someone else (or by us: then it is no longer waiting anyway).
    if (record.pod === undefined) {
      const list = this.waiting.get(record.queue) ?? [];
      const i = list.indexOf(key);
      if (i >= 0) list.splice(i, 1);
      if (event.kind === 'cancelled') record.cancelledAt ??= this.now();
    }
  }

  start(): void {
    this.timer = setInterval(() => this.poll(), this.options.intervalMs ?? 50);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([...this.inFlight]);
  }

  jobs(): CiJobRecord[] {
    return [...this.records.values()];
  }

  /** One pass: give waiting CI jobs to idle Running agents, finish the jobs of finished agents. */
  poll(): void {
    const running = this.options.runningPods();
    const seen = new Set<string>();
    for (const pod of running) {
      const name = pod.metadata?.name;
      const queue = pod.metadata?.annotations?.[QUEUE_ANNOTATION];
      if (!name || !queue) continue;
      seen.add(name);
      if (this.pods.get(name)) continue; // busy
      const key = this.waiting.get(queue)?.shift();
      this.pods.set(name, key ?? '');
      const record = key ? this.records.get(key) : undefined;
      if (!record) continue;
      record.pod = name;
      record.agentRunningAt = this.now();
      this.send(record, 'started');
    }
    for (const [name, key] of this.pods) {
      if (seen.has(name)) continue;
      this.pods.delete(name);
      const record = key ? this.records.get(key) : undefined;
      if (!record) continue;
      record.finishedAt = this.now();
      this.send(record, 'finished');
    }
  }

  private send(record: CiJobRecord, transition: Transition): void {
    const job: CiJob = { provider: record.provider, jobId: record.jobId, queue: record.queue };
    const times = { scheduledAt: record.scheduledAt, startedAt: record.agentRunningAt, finishedAt: record.finishedAt };
    const attempt = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        try {
          const result = await post(
            this.options.webhookUrl(),
            delivery(job, transition, this.options.secrets, times, this.now()),
          );
          if (result.status === 202) {
            if (transition === 'started') record.startedAt = this.now();
            return;
          }
          if (result.status < 500) {
            this.options.onError?.(
              `simulated CI: ${transition} webhook of ${record.provider} job ${record.jobId} answered ${result.status} ${result.body}`,
            );
            return;
          }
        } catch (error) {
          if (i === 4) this.options.onError?.(`simulated CI: ${transition} webhook failed: ${String(error)}`);
        }
        await new Promise((r) => setTimeout(r, 200 * (i + 1)));
      }
    };
    const p = attempt().finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }
}
