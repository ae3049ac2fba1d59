/**
 * The simulator runs the product's stop of surplus agents (scaler/scale-down.ts: a list of the
 * queue's pods, core/scale-down.ts selectStops, a graceful delete each) on its cluster: up to k
 * Running and Ready pods of the queue, not terminating, newest start first;
 * the cluster cannot tell idle from busy, so an idle agent exits at once (plus its exit time) and a
 * busy one finishes its CI job and exits as it would have. Both end Succeeded.
 */

import { describe, expect, it } from 'vitest';
import { buildAgentJob } from '../../functions/core/agent-job.js';
import { selectStops } from '../../functions/core/scale-down.js';
import { VirtualClock } from '../../tools/simulate/clock.js';
import { SimCluster } from '../../tools/simulate/cluster.js';
import { newCounters, SIM_TEMPLATE } from '../../tools/simulate/policies.js';
import type { TraceJob } from '../../tools/simulate/trace.js';
import { type Pod, World } from '../../tools/simulate/world.js';

const job = (id: string, at: number, duration: number): TraceJob => ({ id, at, queue: 'q', duration });

/** What scaler/scale-down.ts does for one queue's scaleDown of `k`: the pods it deleted. */
async function stopAgents(clock: VirtualClock, world: World, cluster: SimCluster, queue: string, k: number) {
  const jobNames = (await cluster.listAgentJobs())
    .filter((j) => j.metadata?.annotations?.['ci-autoscaler/queue'] === queue && j.status?.completionTime === undefined)
    .map((j) => j.metadata?.name ?? '');
  if (jobNames.length === 0) return [];
  const pods = await cluster.listAgentPods({ jobNames, phase: 'Running' });
  const stopped: Pod[] = [];
  for (const ref of selectStops(pods, k, clock.epochNow()).stop)
    if ((await cluster.deletePod(ref, 3600)) === 'deleted') {
      const pod = world.pods.find((p) => ref.uid === `uid-pod-${p.id}`);
      if (pod) stopped.push(pod);
    }
  return stopped;
}

/** A world with a 10 s start-up and a 2 s exit; agents with no idle timeout (ours-warm's). */
function setup(trace: TraceJob[]) {
  const clock = new VirtualClock();
  const world = new World(
    clock,
    {
      podStartupSeconds: 10,
      idleTimeoutSeconds: 60,
      agentExitSeconds: 2,
      webhookLatencySeconds: 0,
      reorderWindowSeconds: 0,
      seed: 1,
    },
    trace,
  );
  const counters = newCounters();
  const cluster = new SimCluster(clock, world, counters, () => 'q', undefined, { ephemeral: true, idleTimeout: false });
  const create = (name: string, count: number) =>
    cluster.createJob(
      buildAgentJob(SIM_TEMPLATE, {
        namespace: 'ci-agents',
        queue: 'q',
        dispatchId: name,
        jobName: name,
        count,
        ttlSecondsAfterFinished: 600,
        activeDeadlineSeconds: 3600,
      }),
    );
  return { clock, world, cluster, counters, create };
}

describe('the scaler stops surplus agents as the product does (graceful stop by pod deletion)', () => {
  it('newest start first, idle or busy alike: an idle one exits at once, a busy one after its CI job, all Succeeded', async () => {
    // a: 1 agent at 0 s takes job x (scheduled at 5 s, ready at 10 s, runs 100 s);
    // b: 2 agents at 20 s (ready at 30 s, idle); c: 1 agent at 40 s (still starting at 45 s).
    const { clock, world, cluster, counters, create } = setup([job('x', 5, 100)]);
    const seen: Record<string, unknown> = {};
    clock.at(0, () => void create('a', 1));
    clock.at(20_000, () => void create('b', 2));
    clock.at(40_000, () => void create('c', 1));
    const at45: Record<string, unknown> = {};
    const ids = async (stopped: Promise<Pod[]>) => (await stopped).map((p) => p.id);
    clock.at(45_000, async () => {
      at45.states = world.pods.map((p) => p.state);
      // k = 2: the newest two Running pods (b's, idle).
      at45.first = await ids(stopAgents(clock, world, cluster, 'q', 2));
      at45.statesAfter = world.pods.map((p) => p.state);
      // Already terminating: not candidates again, and counted as leaving (k = 5 less 2: the busy
      // one, which cannot be told apart); the one still starting is not a candidate either.
      at45.second = await ids(stopAgents(clock, world, cluster, 'q', 5));
      at45.third = await ids(stopAgents(clock, world, cluster, 'q', 5));
    });
    clock.at(46_000, async () => {
      const jobs = await cluster.listAgentJobs();
      seen.a = jobs.find((j) => j.metadata?.name === 'a')?.status;
      seen.b = jobs.find((j) => j.metadata?.name === 'b')?.status;
    });
    clock.at(48_000, async () => {
      const jobs = await cluster.listAgentJobs();
      seen.bAfterExit = jobs.find((j) => j.metadata?.name === 'b')?.status;
    });
    await clock.run(300_000);
    const [busy, idle1, idle2, starting] = world.pods;
    expect(at45).toEqual({
      states: ['busy', 'idle', 'idle', 'pending'],
      first: [idle1?.id, idle2?.id],
      statesAfter: ['busy', 'exiting', 'exiting', 'pending'],
      second: [busy?.id],
      third: [],
    });
    // The idle agents left at 45 s + the 2 s exit, Succeeded.
    expect(idle1).toMatchObject({ state: 'done', outcome: 'succeeded', endedAt: 47 });
    expect(idle2).toMatchObject({ state: 'done', outcome: 'succeeded', endedAt: 47 });
    // Terminating pods are in status.terminating, not active nor ready; then Succeeded.
    expect(seen.a).toMatchObject({ active: 0, ready: 0, terminating: 1, succeeded: 0, failed: 0 });
    expect(seen.b).toMatchObject({ active: 0, ready: 0, terminating: 2, succeeded: 0 });
    expect(seen.bAfterExit).toMatchObject({ active: 0, succeeded: 2, failed: 0 });
    // The busy agent ran its CI job to its end (not interrupted, not re-queued), then exited 0.
    const x = world.jobs[0];
    expect(x).toMatchObject({ state: 'finished', startedAt: 10, endedAt: 110, interrupted: 0 });
    expect(busy).toMatchObject({ state: 'done', outcome: 'succeeded', endedAt: 112 });
    // The agent that was starting was not stopped: it is still waiting for a job.
    expect(starting?.state).toBe('idle');
    expect(counters.kube.delete).toBe(3);
  });

  it('a queue with no Running pod stops nothing; only the queue asked for is touched', async () => {
    const { clock, world, cluster, counters, create } = setup([]);
    clock.at(0, () => void create('a', 2));
    const stopped: number[][] = [];
    const ids = async (s: Promise<Pod[]>) => stopped.push((await s).map((p) => p.id));
    clock.at(5_000, () => void ids(stopAgents(clock, world, cluster, 'q', 2)));
    clock.at(20_000, () => void ids(stopAgents(clock, world, cluster, 'other', 2)));
    await clock.run(30_000);
    expect(stopped).toEqual([[], []]);
    expect(world.pods.map((p) => p.state)).toEqual(['idle', 'idle']);
    expect(counters.kube.delete).toBeUndefined();
  });
});

describe('the simulated cluster lists and deletes agent pods as the Pods API does', () => {
  it('phase, Ready, startTime; a deleted pod keeps its phase with deletionTimestamp; a wrong uid or name is gone', async () => {
    const { clock, cluster, create } = setup([job('x', 0, 30)]);
    const seen: Record<string, unknown> = {};
    clock.at(0, () => void create('a', 2));
    clock.at(5_000, async () => {
      seen.starting = (await cluster.listAgentPods({ jobNames: ['a'] })).map((p) => p.status?.phase);
      seen.running = await cluster.listAgentPods({ jobNames: ['a'], phase: 'Running' });
    });
    clock.at(20_000, async () => {
      const [busy, idle] = await cluster.listAgentPods({ jobNames: ['a'], phase: 'Running' });
      seen.ready = [busy, idle].map((p) => p?.status?.conditions?.find((c) => c.type === 'Ready')?.status);
      const ref = (p: typeof busy) => ({ name: p?.metadata?.name ?? '', uid: p?.metadata?.uid ?? '' });
      seen.wrongUid = await cluster.deletePod({ ...ref(busy), uid: 'another' }, 600);
      seen.noSuchPod = await cluster.deletePod({ name: 'a-9-9', uid: 'uid-pod-9' }, 600);
      seen.deleted = await cluster.deletePod(ref(busy), 600);
      const [after] = await cluster.listAgentPods({ jobNames: ['a'], firstIndexes: 1 });
      seen.after = {
        phase: after?.status?.phase,
        deletionTimestamp: after?.metadata?.deletionTimestamp,
        grace: after?.metadata?.deletionGracePeriodSeconds,
      };
    });
    clock.at(40_000, async () => {
      seen.ended = (await cluster.listAgentPods({ jobNames: ['a'] })).map((p) => p.status?.phase);
    });
    await clock.run(60_000);
    const at = (s: number) => new Date(clock.epochMs + s * 1000);
    expect(seen).toEqual({
      starting: ['Pending', 'Pending'],
      running: [],
      ready: ['True', 'True'],
      wrongUid: 'gone',
      noSuchPod: 'gone',
      deleted: 'deleted',
      // Busy with x (10 s .. 40 s): it keeps running its CI job, Running and being deleted.
      after: { phase: 'Running', deletionTimestamp: at(20 + 600), grace: 600 },
      // x ended at 40 s, its agent exits 2 s later; the other agent is still up.
      ended: ['Running', 'Running'],
    });
  });
});
