/**
 * Which agent pods a queue's scale-down stops (core/decision.ts `scaleDown`). Pure: no I/O.
 *
 * A stop is a pod deletion with a grace period (scaler/scale-down.ts): the agent gets SIGTERM,
 * and an idle one exits 0 within seconds while a busy one finishes its CI job first. The scaler
 * cannot tell an idle agent from a busy one in the cluster, so it stops the newest: the agents
 * up for the shortest time (latest `status.startTime`) among those Running and Ready and not
 * already being deleted. An agent takes its CI job after it is up, so the newer it is, the fewer
 * CI jobs it can have taken (busyBound's argument, core/decision.ts); when the pool's target
 * drops, pending demand is met and the newest agents are the pool's, waiting. (A ReplicaSet's
 * scale-down likewise deletes the pods ready for the shortest time first: controller_utils.go
 * ActivePods.) In the simulator (seed 1), oldest-first made 58 deletes against 24 on bursty and
 * 20 against 12 on diurnal for the same surplus: the extra ones hit busy agents, which then show
 * Terminating until their CI job ends, and left more idle (41.5 % against 39.9 %). A Pending pod is an agent still starting: never stopped
 * (it would waste the start).
 *
 * Agents being stopped are still supply (their pods have not ended: the Job counts them neither
 * succeeded nor failed) until they end, so the next tick's decision sees the same surplus. Those
 * whose stop was asked for within `settleMs` are taken as the surplus on its way out and
 * lower the number stopped again; one stopped longer ago than that is taken as busy (an idle
 * agent would be gone by then), so the surplus it does not cover is stopped from the others.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { isReady } from './agent-job.js';

/** How long an idle agent takes from its stop to its pod's end, counted by the Job: at most. */
export const STOP_SETTLE_MS = 60_000;

export interface StopSelection {
  /** The pods to delete, newest first. */
  readonly stop: readonly { readonly name: string; readonly uid: string }[];
  /** Pods whose stop was asked for within settleMs: agents already leaving. */
  readonly stopping: number;
  /** Running, Ready and not being deleted: what could have been stopped. */
  readonly candidates: number;
}

const ms = (t: Date | string | undefined): number => (t === undefined ? Number.NaN : new Date(t).getTime());

/** When the pod's deletion was asked for (deletionTimestamp minus its grace period); undefined when none. */
export function deletionRequestedAt(pod: V1Pod): number | undefined {
  const at = ms(pod.metadata?.deletionTimestamp);
  if (Number.isNaN(at)) return undefined;
  return at - (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
}

/**
 * Up to `scaleDown` pods to stop, minus the agents already leaving: the Running, Ready pods not
 * being deleted, latest startTime first (then the latest creation, then name: every scaler
 * invocation picks the same ones, so two at once delete the same pods rather than twice as many).
 */
export function selectStops(
  pods: readonly V1Pod[],
  scaleDown: number,
  now: number,
  settleMs: number = STOP_SETTLE_MS,
): StopSelection {
  let stopping = 0;
  const candidates: { name: string; uid: string; started: number; created: number }[] = [];
  for (const p of pods) {
    const requested = deletionRequestedAt(p);
    if (requested !== undefined) {
      const phase = p.status?.phase;
      if (phase !== 'Succeeded' && phase !== 'Failed' && now - requested < settleMs) stopping++;
      continue;
    }
    const name = p.metadata?.name;
    const uid = p.metadata?.uid;
    if (!name || !uid || !isReady(p)) continue;
    const started = ms(p.status?.startTime);
    const created = ms(p.metadata?.creationTimestamp);
    candidates.push({
      name,
      uid,
      started: Number.isNaN(started) ? Number.NEGATIVE_INFINITY : started,
      created: Number.isNaN(created) ? Number.NEGATIVE_INFINITY : created,
    });
  }
  candidates.sort((a, b) => b.started - a.started || b.created - a.created || (a.name < b.name ? -1 : 1));
  const wanted = Math.max(0, Math.floor(scaleDown) - stopping);
  return {
    stop: candidates.slice(0, wanted).map(({ name, uid }) => ({ name, uid })),
    stopping,
    candidates: candidates.length,
  };
}
