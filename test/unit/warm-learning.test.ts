/**
 * WARM_POOL=learned in the scaler's tick (scaler/warm-learning.ts): the `scheduled` events the
 * ledger applies are counted, a bucket that ended is learned and saved, the tracker is sized from
 * the learning; a failing store is logged and the tick goes on.
 */
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import {
  type ArrivalHistoryStore,
  BUCKET_MS,
  bucketStart,
  LEARN_GRACE_MS,
  type StoredArrivals,
  weekBucketOf,
} from '../../functions/core/arrival-model.js';
import type { QueuedJobEvent } from '../../functions/core/job-event.js';
import type { EventSource, ScalerPorts } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { learnedWarmPool } from '../../functions/scaler/warm-learning.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';
import { asMessages, jobEvent } from '../support/job-events.js';

class MemoryHistoryStore implements ArrivalHistoryStore {
  readonly items = new Map<string, { arrivals: StoredArrivals; version: number }>();
  failing = false;
  async get(queue: string) {
    if (this.failing) throw new Error('ProvisionedThroughputExceededException');
    return this.items.get(queue);
  }
  async put(queue: string, arrivals: StoredArrivals, version: number | undefined) {
    if ((this.items.get(queue)?.version ?? undefined) !== version) return false;
    this.items.set(queue, { arrivals, version: (version ?? 0) + 1 });
    return true;
  }
}

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};
const settings = { queues: ['default'], limits: { default: { minAgents: 0, maxAgents: 5 } }, intentLeaseMs: 60_000 };
const T0 = bucketStart(Date.UTC(2026, 10, 23, 10)); // a Monday, 10:00 UTC

function world(store: ArrivalHistoryStore) {
  let now = T0 + 1_000;
  const pending: QueuedJobEvent[] = [];
  const warnings: string[] = [];
  const events: EventSource = {
    async receive() {
      return asMessages(pending.splice(0, 10));
    },
    delete: async () => [],
  };
  const ports: ScalerPorts = {
    events,
    ledger: new InMemoryLedgerStore(),
    limiter: new InMemoryLimiterStore(),
    cluster: { listAgentJobs: async () => [], createJob: async () => 'created' },
    jobs: jobFactory({
      namespace: 'ci',
      ttlSecondsAfterFinished: 60,
      activeDeadlineSeconds: 600,
      templateFor: () => template,
    }),
    log: { debug() {}, info() {}, warn: (m) => warnings.push(m), error() {} },
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
    ...learnedWarmPool(store),
  };
  let n = 0;
  return {
    ports,
    warnings,
    schedule(count: number) {
      for (let i = 0; i < count; i++)
        pending.push(
          jobEvent(`job-${++n}`, 'scheduled', { provider: 'github', occurredAt: new Date(now - 500).toISOString() }),
        );
    },
    async tickAt(t: number) {
      now = t;
      return tick(ports, settings, { waitSeconds: 0, deadline: now + 30_000 });
    },
  };
}

describe('WARM_POOL=learned in the scaler tick (scaler/warm-learning.ts)', () => {
  it('counts the scheduled events applied, learns the bucket once it ended and saves it', async () => {
    const store = new MemoryHistoryStore();
    const w = world(store);
    w.schedule(4);
    await w.tickAt(T0 + 60_000);
    w.schedule(3);
    await w.tickAt(T0 + 5 * 60_000);
    // Saved, not learned yet: the bucket is still open.
    expect(store.items.get('default')?.arrivals.open?.arrivals).toHaveLength(7);
    expect(store.items.get('default')?.arrivals.history.week.size).toBe(0);
    // The bucket ended and its grace passed: learned with its 7 arrivals, and saved.
    await w.tickAt(T0 + BUCKET_MS + LEARN_GRACE_MS + 1_000);
    const learned = store.items.get('default')?.arrivals.history.week.get(weekBucketOf(T0));
    expect(learned).toMatchObject({ n: 1, arrivals: 7 });
    expect(w.warnings).toEqual([]);
  });

  it('a failing store is logged and the tick still decides (from the recent arrivals)', async () => {
    const store = new MemoryHistoryStore();
    store.failing = true;
    const w = world(store);
    w.schedule(2);
    const report = await w.tickAt(T0 + 60_000);
    expect(w.warnings).toContain('warm pool history not synced');
    expect(report.decisions).toHaveLength(1);
    expect(report.decisions[0]?.count).toBeGreaterThan(0);
  });
});
