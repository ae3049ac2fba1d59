/** Wiring of the scaler's ports onto the adapters: the events queue and the agent Job factory. */
import type { V1Job } from '@kubernetes/client-node';
import type { EventsQueue } from '../adapters/sqs/events-queue.js';
import { buildAgentJob, deploymentOf, dispatchIdOf, jobNameFor, liveAgents, queueOf } from '../core/agent-job.js';
import type { QueueAgents } from '../core/routing.js';
import type { EventSource, JobFactory } from './scaler.js';

export function eventSource(queue: EventsQueue): EventSource {
  return {
    receive: (options) => queue.receiveEvents(options),
    delete: async (handles) => (await queue.deleteMessages(handles)).failed.map((f) => f.receiptHandle),
    defer: (handle, seconds) => queue.changeVisibility(handle, seconds),
  };
}

export interface JobFactoryOptions {
  readonly namespace: string;
  readonly ttlSecondsAfterFinished: number;
  readonly activeDeadlineSeconds: number;
  /** The agent Job template of a queue (already loaded and validated). */
  readonly templateFor: (queue: string) => V1Job;
  /**
   * This deployment's identity (the ledger table): written on every Job and part of its name;
   * Jobs of another deployment in the same namespace are not ours. Omitted: every Job is ours.
   */
  readonly deployment?: string;
  /** What a queue's agents carry (QUEUE_OVERRIDES), injected into its agents; default: defaults. */
  readonly agentsFor?: (queue: string) => QueueAgents | undefined;
  /** A queue's own GitLab runner token Secret, if it has one. */
  readonly runnerTokenSecretFor?: (queue: string) => string | undefined;
}

export function jobFactory(options: JobFactoryOptions): JobFactory {
  return {
    jobName: (queue, dispatchId) => jobNameFor(queue, dispatchId, options.deployment),
    build: (d) => {
      const agents = options.agentsFor?.(d.queue);
      const runnerTokenSecret = options.runnerTokenSecretFor?.(d.queue);
      return buildAgentJob(options.templateFor(d.queue), {
        namespace: options.namespace,
        queue: d.queue,
        dispatchId: d.dispatchId,
        jobName: d.jobName,
        count: d.count,
        ttlSecondsAfterFinished: options.ttlSecondsAfterFinished,
        activeDeadlineSeconds: options.activeDeadlineSeconds,
        ...(options.deployment ? { deployment: options.deployment } : {}),
        ...(agents ? { agents } : {}),
        ...(runnerTokenSecret ? { runnerTokenSecret } : {}),
      });
    },
    describe: (job) => {
      const queue = queueOf(job);
      const dispatchId = dispatchIdOf(job);
      const jobName = job.metadata?.name;
      if (queue === undefined || dispatchId === undefined || jobName === undefined) return undefined;
      if (options.deployment !== undefined && deploymentOf(job) !== options.deployment) return undefined;
      return { jobName, queue, dispatchId, live: liveAgents(job) };
    },
  };
}
