/**
 * Stage 6, scale-down: with a warm pool, a queue whose decision carries `scaleDown` (idle agents
 * beyond pending demand, the pool and MIN_AGENTS: core/decision.ts) gets that many agents
 * stopped, after the tick has made what the other queues need. One pod list per such queue (the
 * Running pods of its live Jobs), core/scale-down.ts picks the newest Running and Ready pods,
 * and each is deleted with a grace period of the Job's activeDeadlineSeconds and its uid as a
 * precondition (ClusterPort.deletePod).
 *
 * Why a deletion is a safe stop: our Jobs (core/agent-job.ts) have podReplacementPolicy Failed
 * and a podFailurePolicy, so the Job controller makes no replacement for a pod while it
 * terminates (job_controller.go manageJob: terminating pods count against parallelism;
 * indexed_job_utils.go firstPendingIndexes: their indexes are not pending), and one that ends
 * Succeeded completes its index. The agent's command turns SIGTERM into "exit now if idle,
 * else after the CI job" (infra/k8s/agents). Its limiter token comes back only once the pod has
 * ended: the Job counts it succeeded (core/agent-job.ts liveAgents), as for any other agent.
 *
 * A failed stop loses nothing (the agent leaves at its idle timeout): it is logged, never fails
 * the tick.
 */
import type { Decision } from '../core/decision.js';
import type { ClusterJob } from '../core/limiter.js';
import { selectStops } from '../core/scale-down.js';
import { describeError } from '../shared/errors.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';

/** What a queue's scale-down did this tick. */
export interface AgentStops {
  readonly queue: string;
  /** The decision's scaleDown. */
  readonly scaleDown: number;
  /** Pods deleted (their stop asked for), newest first. */
  readonly stopped: readonly string[];
  /** Agents whose stop was asked for recently, still leaving: counted against scaleDown. */
  readonly stopping: number;
  /** Pods that could have been stopped (Running, Ready, not being deleted). */
  readonly candidates: number;
  /** Pods that were gone, or another pod by now, when deleted. */
  readonly gone: readonly string[];
  /** Pods whose delete failed: they leave at their idle timeout. */
  readonly failed: readonly string[];
}

/** Stops the surplus agents of each decision with scaleDown; none without a grace period or a cluster that can. */
export async function stopSurplus(
  ports: ScalerPorts,
  settings: ScalerSettings,
  decisions: readonly Decision[],
  ours: readonly ClusterJob[],
): Promise<AgentStops[]> {
  const { cluster, log } = ports;
  const grace = settings.stopGraceSeconds;
  const deletePod = cluster.deletePod?.bind(cluster);
  const listAgentPods = cluster.listAgentPods?.bind(cluster);
  if (grace === undefined || !deletePod || !listAgentPods) return [];
  const surplus = decisions.filter((d) => (d.scaleDown ?? 0) > 0);
  return Promise.all(
    surplus.map(async (d): Promise<AgentStops> => {
      const scaleDown = d.scaleDown ?? 0;
      const jobNames = ours.filter((j) => j.queue === d.queue && j.live > 0).map((j) => j.jobName);
      const report = { queue: d.queue, scaleDown, stopping: 0, candidates: 0 };
      if (jobNames.length === 0) return { ...report, stopped: [], gone: [], failed: [] };
      let pods: Awaited<ReturnType<typeof listAgentPods>>;
      try {
        // Terminating pods keep their phase until they end: they are listed too.
        pods = await listAgentPods({ jobNames, phase: 'Running' });
      } catch (e) {
        log.warn('surplus agents not stopped: their pods could not be listed', {
          queue: d.queue,
          scaleDown,
          error: describeError(e),
        });
        return { ...report, stopped: [], gone: [], failed: [] };
      }
      const chosen = selectStops(pods, scaleDown, ports.now());
      // Each delete's outcome, in the order chosen (newest first).
      const outcomes = await Promise.all(
        chosen.stop.map(async (pod) => {
          try {
            return { name: pod.name, outcome: await deletePod(pod, grace) };
          } catch (e) {
            log.warn('agent stop failed; it leaves at its idle timeout', {
              queue: d.queue,
              pod: pod.name,
              error: describeError(e),
            });
            return { name: pod.name, outcome: 'failed' as const };
          }
        }),
      );
      const named = (outcome: string) => outcomes.filter((o) => o.outcome === outcome).map((o) => o.name);
      const stopped = named('deleted');
      const gone = named('gone');
      const failed = named('failed');
      const stops = { ...report, stopping: chosen.stopping, candidates: chosen.candidates, stopped, gone, failed };
      if (stopped.length > 0 || gone.length > 0 || failed.length > 0 || chosen.stopping > 0)
        log.info('surplus agents stopped', { ...stops, gracePeriodSeconds: grace });
      ports.metrics?.stops?.(d.queue, stopped.length, failed.length);
      return stops;
    }),
  );
}
