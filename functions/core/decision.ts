/**
 * How many agents a queue is missing. Pure: no I/O.
 *
 * In words: every pending CI job needs an agent, except those that an idle agent will take.
 * Idle agents are the ones in flight (provisioned, including pods still Pending) that are not
 * running a CI job. The warm floor MIN_AGENTS counts agents in flight, it is not added on top of
 * demand. Nothing is ever asked beyond MAX_AGENTS in flight.
 *
 *   idle  = max(0, inFlight - running)
 *   count = min(MAX - inFlight, max(pending + warm - idle, MIN - inFlight, 0)), never negative
 *
 * `warm` (default 0) is the adaptive warm pool (core/warm-pool.ts): idle agents kept on top of
 * pending demand.
 */
export interface QueueObservation {
  readonly queue: string;
  /** CI jobs scheduled and not yet started, finished or cancelled (ledger). */
  readonly pending: number;
  /** CI jobs started and not finished (ledger). */
  readonly running: number;
  /** Agents provisioned and not finished: the limiter's tokens after reconciling with the cluster. */
  readonly inFlight: number;
  readonly minAgents: number;
  readonly maxAgents: number;
  /** Adaptive warm pool: idle agents to keep on top of pending demand (default 0). */
  readonly warm?: number;
}

export interface Decision extends QueueObservation {
  readonly idle: number;
  /** Agents to provision now. */
  readonly count: number;
  /** Why: demand, the warm pool on top of it, warm floor, capped at MAX, or nothing to do. */
  readonly reason: 'demand' | 'warm' | 'floor' | 'capped' | 'none';
}

export function decide(o: QueueObservation): Decision {
  const pending = Math.max(0, o.pending);
  const running = Math.max(0, o.running);
  const inFlight = Math.max(0, o.inFlight);
  const idle = Math.max(0, inFlight - running);
  const warm = Math.max(0, o.warm ?? 0);
  const demand = pending + warm - idle;
  const floor = o.minAgents - inFlight;
  const wanted = Math.max(demand, floor, 0);
  const room = Math.max(0, o.maxAgents - inFlight);
  const count = Math.min(room, wanted);
  const reason: Decision['reason'] =
    wanted === 0
      ? 'none'
      : count < wanted
        ? 'capped'
        : demand < floor
          ? 'floor'
          : warm > 0 && pending - idle < count
            ? 'warm'
            : 'demand';
  return { ...o, pending, running, inFlight, idle, count, reason };
}
