/**
 * How many agents a queue is missing. Pure: no I/O.
 *
 * In words: every pending CI job needs an agent, except those that an idle agent will take.
 * Idle agents are the ones that exist or are on their way (supply: provisioned, including pods
 * still Pending) and are not running a CI job. The warm floor MIN_AGENTS counts that supply, it
 * is not added on top of demand. Nothing is ever asked beyond MAX_AGENTS tokens in flight.
 *
 *   busy  = min(running, supply, busyBound)
 *   idle  = supply - busy
 *   count = min(MAX - inFlight, max(pending + warm - idle, MIN - supply, 0)), never negative
 *
 * `running` is the ledger's, and lags: a CI job whose agent has already exited still counts
 * until its `finished` webhook is applied. Counted against agents made after it started, such a
 * job would hide them as busy and more agents would be asked for (waste). busyBound (see
 * busyBound()) is how many of the supply's agents can be running one of the running CI jobs at
 * all: an agent runs one CI job, which started after the agent was made.
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
  /** Tokens held in the limiter after reconciling with the cluster (what MAX_AGENTS caps). */
  readonly inFlight: number;
  /**
   * Agents provisioned and not finished, or on their way (default inFlight). Less than inFlight
   * when tokens are held for a Job that a late create could still bring back.
   */
  readonly supply?: number;
  /** At most this many agents of the supply can be running a CI job (default: no bound). */
  readonly busyBound?: number;
  readonly minAgents: number;
  readonly maxAgents: number;
  /** Adaptive warm pool: idle agents to keep on top of pending demand (default 0). */
  readonly warm?: number;
}

export interface Decision extends QueueObservation {
  readonly supply: number;
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
  const supply = Math.max(0, o.supply ?? inFlight);
  const busy = Math.max(0, Math.min(running, supply, o.busyBound ?? running));
  const idle = supply - busy;
  const warm = Math.max(0, o.warm ?? 0);
  const demand = pending + warm - idle;
  const floor = o.minAgents - supply;
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
  return { ...o, pending, running, inFlight, supply, idle, count, reason };
}

/**
 * Pending (or running) CI jobs beyond which a queue's decision no longer changes, so the ledger
 * need not count further. decide() is given supply <= inFlight (idle <= inFlight), so with
 * inFlight <= MAX: room + idle <= MAX and pending >= MAX + 1 always asks for the whole room
 * ('capped'); with inFlight > MAX the room is 0 whatever pending is. For `running`: busy =
 * min(running, supply, busyBound), supply <= MAX, and a largest matching of agents to running jobs
 * can always use the jobs that started last (a job that started later fits every agent an earlier
 * one fits), so the MAX + 1 latest start times give the same busy.
 */
export function countCap(maxAgents: number): number {
  return Math.max(0, Math.floor(maxAgents)) + 1;
}

/** Allowed difference between the CI provider's clock (job start times) and ours. */
export const START_CLOCK_SKEW_MS = 2_000;

/** Agents made at one moment (one dispatch's Job, or an intent's agents on their way). */
export interface AgentBatch {
  /** Epoch ms, no later than the agents were made. */
  readonly createdAt: number;
  readonly count: number;
}

/**
 * The most agents of `batches` that can be running the CI jobs started at `startedAt` (epoch
 * ms, no earlier than each really started): each agent runs at most one CI job, which started
 * after the agent was made (give or take skewMs). A running CI job that started before every
 * live agent was made is one whose agent has already exited: it hides no agent as busy. A
 * maximum matching (greedy over start times: every agent available to a job is available to any
 * later one), so it never understates the busy agents: no idle agent is invented.
 */
export function busyBound(
  startedAt: readonly number[],
  batches: readonly AgentBatch[],
  skewMs: number = START_CLOCK_SKEW_MS,
): number {
  const starts = [...startedAt].sort((a, b) => a - b);
  const made = batches.filter((b) => b.count > 0).sort((a, b) => a.createdAt - b.createdAt);
  let next = 0;
  let available = 0;
  let busy = 0;
  for (const start of starts) {
    for (let batch = made[next]; batch && batch.createdAt <= start + skewMs; batch = made[++next]) {
      available += batch.count;
    }
    if (available > 0) {
      available--;
      busy++;
    }
  }
  return busy;
}
