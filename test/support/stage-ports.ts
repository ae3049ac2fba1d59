/**
 * ScalerPorts for testing one scaler stage alone (test/unit/<stage>.test.ts): the in-memory
 * ledger and limiter, a cluster in memory that records each create (and refuses the next
 * `refuse.next` ones with `refuse.error`), the real Job factory, and a log that keeps its lines.
 */
import type { V1Job } from '@kubernetes/client-node';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import type { ScalerPorts, ScalerSettings } from '../../functions/scaler/ports.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};

/** One queue `q` of at most 10 agents, intents leased for a minute. */
export const stageSettings: ScalerSettings = {
  queues: ['q'],
  limits: { q: { minAgents: 0, maxAgents: 10 } },
  intentLeaseMs: 60_000,
};

export type LogLine = { level: 'info' | 'warn' | 'error'; message: string } & Record<string, unknown>;

export function stagePorts(start = 1_800_000_000_000) {
  const clock = { now: start };
  const jobs: V1Job[] = [];
  const creates: string[] = [];
  const refuse: { next: number; error: Error } = { next: 0, error: new Error('Internal Server Error') };
  const lines: LogLine[] = [];
  const ledger = new InMemoryLedgerStore();
  const limiter = new InMemoryLimiterStore();
  const line = (level: LogLine['level']) => (message: string, extra?: Record<string, unknown>) =>
    void lines.push({ level, message, ...extra });
  const ports: ScalerPorts = {
    events: { receive: async () => [], delete: async () => [] },
    ledger,
    limiter,
    cluster: {
      listAgentJobs: async () => structuredClone(jobs),
      createJob: async (job) => {
        creates.push(job.metadata?.name ?? '');
        if (refuse.next > 0) {
          refuse.next--;
          throw refuse.error;
        }
        jobs.push(structuredClone(job));
        return 'created';
      },
    },
    jobs: jobFactory({
      namespace: 'ci',
      ttlSecondsAfterFinished: 600,
      activeDeadlineSeconds: 600,
      templateFor: () => template,
    }),
    log: { debug() {}, info: line('info'), warn: line('warn'), error: line('error') },
    now: () => clock.now,
  };
  return { clock, jobs, creates, refuse, lines, ledger, limiter, ports };
}
