/**
 * How many agents a queue is missing. Pure: no I/O.
 *
 * In words: every pending CI job needs an agent, except those that an idle agent will take.
 * Idle agents are the ones in flight (provisioned, including pods still Pending) that are not
 * running a CI job. The warm floor MIN_AGENTS counts agents in flight, it is not added on top of
 * demand. Nothing is ever asked beyond MAX_AGENTS in flight.
 *
 *   idle  = max(0, inFlight - running)
 *   count = min(MAX - inFlight, max(pending - idle, MIN - inFlight, 0)), never negative
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
}

export interface Decision extends QueueObservation {
  readonly idle: number;
  /** Agents to provision now. */
  readonly count: number;
  /** Why: demand, warm floor, capped at MAX, or nothing to do. */
  readonly reason: 'demand' | 'floor' | 'capped' | 'none';
}

export function decide(o: QueueObservation): Decision {
  const pending = Math.max(0, o.pending);
  const running = Math.max(0, o.running);
  const inFlight = Math.max(0, o.inFlight);
  const idle = Math.max(0, inFlight - running);
  const demand = pending - idle;
  const floor = o.minAgents - inFlight;
  const wanted = Math.max(demand, floor, 0);
  const room = Math.max(0, o.maxAgents - inFlight);
  const count = Math.min(room, wanted);
  const reason: Decision['reason'] =
    wanted === 0 ? 'none' : count < wanted ? 'capped' : demand >= floor ? 'demand' : 'floor';
  return { ...o, pending, running, inFlight, idle, count, reason };
}
