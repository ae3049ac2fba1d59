/**
 * Interleavings of overlapping scaler invocations that once broke MAX_AGENTS (found in review),
 * forced step by step. (A Job recreated after its TTL deleted it is prevented by configuration:
 * JOB_TTL_SECONDS_AFTER_FINISHED >= INTENT_LEASE_SECONDS, see config.test.ts.)
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLimiterStore } from '../../functions/adapters/dynamodb/limiter-store.js';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { liveAgents } from '../../functions/core/agent-job.js';
import type { JobEvent } from '../../functions/core/job-event.js';
import type { LimiterStore } from '../../functions/core/stores.js';
import type { ClusterPort, ScalerPorts } from '../../functions/scaler/ports.js';
import { provision } from '../../functions/scaler/scaler.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};
const factory = jobFactory({
  namespace: 'ci',
  ttlSecondsAfterFinished: 0,
  activeDeadlineSeconds: 600,
  templateFor: () => template,
});
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const LEASE = 60_000;
const settings = { queues: ['q'], limits: { q: { minAgents: 0, maxAgents: 4 } }, intentLeaseMs: LEASE };

function scheduled(jobId: string): JobEvent {
  return jobEvent(jobId, 'scheduled', { provider: 'github', queue: 'q', occurredAt: new Date(0).toISOString() });
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const liveTotal = (jobs: V1Job[]) => jobs.reduce((n, j) => n + liveAgents(j), 0);

function portsFor(o: {
  ledger: InMemoryLedgerStore;
  limiter: LimiterStore;
  cluster: ClusterPort;
  now: () => number;
}): ScalerPorts {
  return {
    events: { receive: async () => [], delete: async () => [] },
    ledger: o.ledger,
    limiter: o.limiter,
    cluster: o.cluster,
    jobs: factory,
    log: quiet,
    now: o.now,
  };
}

describe('an intent released at the end of its lease while a create is under way', () => {
  it('never puts more than MAX_AGENTS agents in flight: no create in the last part of the lease', async () => {
    let now = 1_000_000;
    const jobs: V1Job[] = [];
    const ledger = new InMemoryLedgerStore();
    const limiter = new InMemoryLimiterStore();
    await ledger.apply(['a', 'b', 'c', 'd'].map(scheduled), new Date(now));

    // Tick 0: the reservation is made but Kubernetes answers 503: an intent for 4 is kept.
    let failCreate = true;
    const gateC = deferred();
    let gateCreates = false;
    const cluster: ClusterPort = {
      listAgentJobs: async () => [...jobs],
      createJob: async (job) => {
        if (failCreate) throw new Error('503 Service Unavailable');
        if (gateCreates) await gateC.promise; // scaler C's create is slow (API server recovering)
        if (jobs.some((j) => j.metadata!.name === job.metadata!.name)) return 'exists';
        jobs.push(job);
        return 'created';
      },
    };
    await provision(portsFor({ ledger, limiter, cluster, now: () => now }), settings);
    expect((await limiter.snapshot()).dispatches).toHaveLength(1);

    // Scaler C ticks just before the lease ends: it retries the intent; its create is slow.
    now = 1_000_000 + LEASE - 500;
    failCreate = false;
    gateCreates = true;
    const c = provision(portsFor({ ledger, limiter, cluster, now: () => now }), settings);
    await new Promise((r) => setTimeout(r, 10));

    // Overlapping scaler A ticks just after the lease ended: no Job listed yet -> release,
    // correct the counter down, reserve again for the same 4 pending CI jobs.
    now = 1_000_000 + LEASE + 500;
    gateCreates = false;
    await provision(portsFor({ ledger, limiter, cluster, now: () => now }), settings);

    gateC.resolve();
    await c;
    expect(liveTotal(jobs)).toBeLessThanOrEqual(4);
  });
});

describe('a reservation committed while another scaler reads the limiter snapshot', () => {
  let local: DynamoDbLocal | undefined;
  let client: DynamoDBDocumentClient | undefined;
  beforeAll(async () => {
    local = await startDynamoDbLocal();
    client = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: local.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      }),
    );
  });
  afterAll(async () => {
    client?.destroy();
    await local?.stop();
  });

  it('is not corrected away: never more than MAX_AGENTS agents in flight', async () => {
    const tableName = 'race-snapshot';
    await createLedgerTable(local!.endpoint, tableName);
    const now = 1_000_000;
    const jobs: V1Job[] = [];
    const ledger = new InMemoryLedgerStore();
    await ledger.apply(['a', 'b', 'c', 'd'].map(scheduled), new Date(now));

    const aStarted = deferred();
    const aDispatchRead = deferred();
    const bReserved = deferred();
    const aListed = deferred();

    // Scaler A's snapshot: its LIMITER query is held until B's reservation has committed. If the
    // store sent its DISPATCH query at the same time (the old parallel read), that one has
    // already answered without B's dispatch: the race this test forces.
    const real = client!;
    const slowClient = {
      send: async (command: { input: { ExpressionAttributeValues?: Record<string, unknown> } }) => {
        const pk = command.input.ExpressionAttributeValues?.[':pk'];
        aStarted.resolve();
        if (pk === 'LIMITER') await bReserved.promise;
        const out = await real.send(command as never);
        if (pk === 'DISPATCH') aDispatchRead.resolve();
        return out;
      },
    } as unknown as DynamoDBDocumentClient;
    const storeA = new DynamoLimiterStore({ tableName, client: slowClient });
    const plainB = new DynamoLimiterStore({ tableName, client: real });
    const storeB: LimiterStore = Object.assign(Object.create(plainB) as LimiterStore, {
      reserve: async (r: Parameters<LimiterStore['reserve']>[0]) => {
        // Let a DISPATCH query A already sent answer first (none is sent when reads are sequential).
        await Promise.race([aDispatchRead.promise, new Promise((resolve) => setTimeout(resolve, 300))]);
        const out = await plainB.reserve(r);
        bReserved.resolve();
        return out;
      },
    });

    const clusterA: ClusterPort = {
      listAgentJobs: async () => {
        const list = [...jobs];
        aListed.resolve();
        return list;
      },
      createJob: async (job) => {
        if (jobs.some((j) => j.metadata!.name === job.metadata!.name)) return 'exists';
        jobs.push(job);
        return 'created';
      },
    };
    const clusterB: ClusterPort = {
      listAgentJobs: async () => [...jobs],
      createJob: async (job) => {
        await aListed.promise; // B's create lands just after A's list
        if (jobs.some((j) => j.metadata!.name === job.metadata!.name)) return 'exists';
        jobs.push(job);
        return 'created';
      },
    };

    const a = provision(portsFor({ ledger, limiter: storeA, cluster: clusterA, now: () => now }), settings);
    await aStarted.promise;
    const b = provision(portsFor({ ledger, limiter: storeB, cluster: clusterB, now: () => now }), settings);
    await Promise.all([a, b]);
    expect(liveTotal(jobs)).toBe(4);
  });
});

/**
 * The pattern the randomized end-to-end runs found (issue 12): a Job is deleted by an operator
 * while a create of the same dispatch is still under way (a stale scaler's retry, or the first
 * create answering late). Its tokens must not come back before that create can no longer land,
 * or the Job returns with all its agents and no tokens behind them.
 */
describe('a Job deleted by an operator while a create of its dispatch can still land', () => {
  const MAX = 4;
  const fenced = { queues: ['q'], limits: { q: { minAgents: 0, maxAgents: MAX } }, intentLeaseMs: 120_000 };

  function world() {
    const jobs: V1Job[] = [];
    const gates: { name: string; gate: ReturnType<typeof deferred> }[] = [];
    const cluster = (opts: { slow?: boolean; onList?: () => void } = {}): ClusterPort => ({
      listAgentJobs: async () => {
        const list = [...jobs];
        opts.onList?.();
        return list;
      },
      createJob: async (job) => {
        if (opts.slow) {
          const gate = deferred();
          gates.push({ name: job.metadata!.name!, gate });
          await gate.promise;
        }
        if (jobs.some((j) => j.metadata!.name === job.metadata!.name)) return 'exists';
        jobs.push(structuredClone(job));
        return 'created';
      },
    });
    const deleteAll = () => jobs.splice(0, jobs.length);
    return { jobs, gates, cluster, deleteAll };
  }

  it("a stale scaler's re-create (snapshot: intent without a Job) does not land on returned tokens", async () => {
    const now = 1_000_000;
    const ledger = new InMemoryLedgerStore();
    const limiter = new InMemoryLimiterStore();
    await ledger.apply(['a', 'b', 'c', 'd'].map(scheduled), new Date(now));
    const w = world();

    // Scaler A reserves; its create is held until B has looked.
    const a = provision(portsFor({ ledger, limiter, cluster: w.cluster({ slow: true }), now: () => now }), fenced);
    while (w.gates.length === 0) await new Promise((r) => setTimeout(r, 1));
    // Scaler B: the intent has no Job yet -> it re-creates it; its create is slow too.
    const b = provision(portsFor({ ledger, limiter, cluster: w.cluster({ slow: true }), now: () => now }), fenced);
    while (w.gates.length < 2) await new Promise((r) => setTimeout(r, 1));
    w.gates[0]!.gate.resolve();
    await a;
    expect(liveTotal(w.jobs)).toBe(MAX);

    // An operator deletes the Job; scaler C ticks: the Job is gone.
    w.deleteAll();
    await provision(portsFor({ ledger, limiter, cluster: w.cluster(), now: () => now + 5_000 }), fenced);
    // B's create lands late.
    w.gates[1]!.gate.resolve();
    await b;
    expect(liveTotal(w.jobs)).toBeLessThanOrEqual(MAX);
    // And the next ticks keep it so.
    await provision(portsFor({ ledger, limiter, cluster: w.cluster(), now: () => now + 6_000 }), fenced);
    expect(liveTotal(w.jobs)).toBeLessThanOrEqual(MAX);
  });

  it("the first create answering late (after another scaler's create landed and was deleted) does not land on returned tokens", async () => {
    const now = 1_000_000;
    const ledger = new InMemoryLedgerStore();
    const limiter = new InMemoryLimiterStore();
    await ledger.apply(['a', 'b', 'c', 'd'].map(scheduled), new Date(now));
    const w = world();

    // Scaler A reserves; its create is slow.
    const a = provision(portsFor({ ledger, limiter, cluster: w.cluster({ slow: true }), now: () => now }), fenced);
    while (w.gates.length === 0) await new Promise((r) => setTimeout(r, 1));
    // Scaler B sees the intent without a Job and creates it at once.
    await provision(portsFor({ ledger, limiter, cluster: w.cluster(), now: () => now + 1_000 }), fenced);
    expect(liveTotal(w.jobs)).toBe(MAX);
    // An operator deletes it; scaler C ticks.
    w.deleteAll();
    await provision(portsFor({ ledger, limiter, cluster: w.cluster(), now: () => now + 5_000 }), fenced);
    // A's create lands.
    w.gates[0]!.gate.resolve();
    await a;
    expect(liveTotal(w.jobs)).toBeLessThanOrEqual(MAX);
  });

  it('tokens shrunk to the live agents are not taken while a create can still bring the Job back whole', async () => {
    const now = 1_000_000;
    const ledger = new InMemoryLedgerStore();
    const limiter = new InMemoryLimiterStore();
    await ledger.apply(['a', 'b', 'c', 'd'].map(scheduled), new Date(now));
    const w = world();

    const a = provision(portsFor({ ledger, limiter, cluster: w.cluster({ slow: true }), now: () => now }), fenced);
    while (w.gates.length === 0) await new Promise((r) => setTimeout(r, 1));
    await provision(portsFor({ ledger, limiter, cluster: w.cluster(), now: () => now + 1_000 }), fenced);
    // Two of the four agents finished; two more CI jobs arrive.
    const job = w.jobs[0]!;
    job.status = { succeeded: 2, active: 2 };
    await ledger.apply(['e', 'f'].map(scheduled), new Date(now + 2_000));
    await provision(portsFor({ ledger, limiter, cluster: w.cluster(), now: () => now + 3_000 }), fenced);
    // An operator deletes the Job; A's create lands and brings it back whole.
    w.jobs.splice(w.jobs.indexOf(job), 1);
    w.gates[0]!.gate.resolve();
    await a;
    expect(liveTotal(w.jobs)).toBeLessThanOrEqual(MAX);
  });
});
