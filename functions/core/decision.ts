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
 *
 * `exited` (default 0, see ExitedAgents) lags the other way: agents of ours that exited after a CI
 * job whose `finished` event is not applied yet. Each one's CI job is still open in the ledger,
 * pending (its `started` is late too) or running, and needs no agent. With D open CI jobs whose
 * agent is gone, the agents missing are pending + running - D - supply (every open job has one
 * agent, the live ones are the supply); running - busy of them are known from busyBound already,
 * so only the excess `gone = max(0, exited - (running - busy))` is taken off:
 *
 *   count = min(MAX - inFlight, max(pending - gone + warm - idle, MIN - supply, 0))
 *
 * With a warm pool, idle agents beyond what is wanted are surplus once the pool's target drops;
 * the decision says how many to delete (never below MIN):
 *
 *   scaleDown = min(idle - leaving - pending - warm, supply - MIN), when positive
 *
 * `leaving` (default 0, ExitedAgents.leaving) are agents whose CI job's `finished` is applied and
 * whose exit is not seen yet: they still count in the supply and are not busy, so they look idle,
 * but they are on their way out; stopping them would stop nothing.
 *
 * Surplus without `gone`: it only ever adds to the surplus, and an exit not explained yet may be that of
 * an agent just stopped (scaler/scale-down.ts), idle, whose pod ended before the next drain
 * caught up: counted as a CI job's, it would stop one more agent. Left out, a true surplus is
 * stopped a tick later at worst.
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
  /**
   * Agents of ours that exited after a CI job whose `finished` event is not applied yet
   * (ExitedAgents.count; default 0): their CI jobs are still open in the ledger and need no agent.
   */
  readonly exited?: number;
  /**
   * Agents whose CI job's `finished` (or `cancelled`) event is applied and whose exit is not seen
   * yet (ExitedAgents.leaving; default 0): idle in the supply's count, but leaving. Lowers only
   * the surplus (scaleDown).
   */
  readonly leaving?: number;
}

export interface Decision extends QueueObservation {
  readonly supply: number;
  readonly idle: number;
  /** Open CI jobs of the ledger known done by `exited` beyond those busyBound excludes already. */
  readonly gone: number;
  /** Agents to provision now. */
  readonly count: number;
  /** Why: demand, the warm pool on top of it, warm floor, capped at MAX, or nothing to do. */
  readonly reason: 'demand' | 'warm' | 'floor' | 'capped' | 'none';
  /**
   * With a warm pool (`warm` given): idle agents beyond pending demand, the pool and the
   * MIN_AGENTS floor, to delete now (the pool's target dropped) instead of leaving them to an
   * idle timeout and making new ones when it rises again. Absent when there are none.
   */
  readonly scaleDown?: number;
  /** The events' lag the tick measured (drain.ts DrainReport lagMs), as reported; not an input. */
  readonly lagMs?: number;
}

export function decide(o: QueueObservation): Decision {
  const pending = Math.max(0, o.pending);
  const running = Math.max(0, o.running);
  const inFlight = Math.max(0, o.inFlight);
  const supply = Math.max(0, o.supply ?? inFlight);
  const busy = Math.max(0, Math.min(running, supply, o.busyBound ?? running));
  const idle = supply - busy;
  const warm = Math.max(0, o.warm ?? 0);
  const gone = Math.max(0, Math.max(0, o.exited ?? 0) - (running - busy));
  const demand = pending - gone + warm - idle;
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
          : warm > 0 && pending - gone - idle < count
            ? 'warm'
            : 'demand';
  // Surplus idle agents: only with a warm pool, whose target can fall below the idle agents.
  const leaving = Math.max(0, o.leaving ?? 0);
  const surplus = o.warm === undefined ? 0 : Math.min(idle - leaving - pending - warm, supply - o.minAgents);
  return {
    ...o,
    pending,
    running,
    inFlight,
    supply,
    idle,
    gone,
    count,
    reason,
    ...(surplus > 0 ? { scaleDown: surplus } : {}),
  };
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

/** Our Job's agents that exited with success so far (the Job's status.succeeded). */
export interface SucceededAgents {
  readonly jobName: string;
  readonly queue: string;
  readonly succeeded: number;
}

export interface ExitedAgentsOptions {
  /**
   * How long after an exit was seen its `finished` event may still be on its way once the events
   * applied have reached that time (the providers' delivery, clock skew): default 2 s (under lag the lag itself holds the exit: drained()).
   */
  readonly marginMs?: number;
  /** How long a `finished` applied before its agent's exit was seen waits for it: default 30 s. */
  readonly creditMs?: number;
  /** An exit is forgotten after this long whatever the events say: default 10 min. */
  readonly maxAgeMs?: number;
}

/**
 * Agents of ours that exited after a CI job whose `finished` (or `cancelled`) event is not applied
 * yet: under lag (a throttled table, a slow cluster, a backlog after an outage) an agent can take
 * its CI job, run it and exit before the job's `started` and `finished` events reach the ledger,
 * which still counts the job pending or running while no agent of ours is left for it; without
 * this, that job is provisioned for again (decide(): `exited`). Pure, clock passed in.
 *
 * Exits are seen as the rise of our Jobs' status.succeeded (an agent takes one CI job and exits
 * 0); each `finished` or `cancelled` event applied to the ledger explains the oldest exit of its
 * queue, or, seen first, waits (creditMs) for the exit it explains. The first look only takes
 * stock: exits before it are taken as explained. An exit stays unexplained at most until the
 * events applied have caught up with it: once an event that happened marginMs after the exit was
 * seen is applied, or a drain found every event sent until then applied (drained()), the exit's
 * own `finished` (sent before the agent exited) would have been applied too, so the exit was not
 * a CI job's (an agent that left idle) or its event was applied by another scaler invocation;
 * and never beyond maxAgeMs. Errors go one way only while they
 * last: an exit taken as a CI job's when it was none delays an agent for at most that long.
 */
export class ExitedAgents {
  private readonly marginMs: number;
  private readonly creditMs: number;
  private readonly maxAgeMs: number;
  /** Succeeded agents per Job name at the last look; undefined before the first look. */
  private seen: Map<string, number> | undefined;
  /** Per queue: when each unexplained exit was seen, oldest first. */
  private readonly exits = new Map<string, number[]>();
  /** Per queue: when each `finished` still waiting for its exit was applied, oldest first. */
  private readonly credits = new Map<string, number[]>();
  /** Per queue: the latest provider time of an event applied. */
  private readonly caughtUp = new Map<string, number>();
  /** Every event sent to the events queue before this time (epoch ms) is applied (drained()). */
  private drainedUpTo = 0;

  constructor(options: ExitedAgentsOptions = {}) {
    this.marginMs = options.marginMs ?? 2_000;
    this.creditMs = options.creditMs ?? 30_000;
    this.maxAgeMs = options.maxAgeMs ?? 600_000;
  }

  /** Our Jobs as just listed (every one: a Job not listed is gone). */
  observe(jobs: readonly SucceededAgents[], now: number): void {
    const first = this.seen === undefined;
    const before = this.seen ?? new Map<string, number>();
    const after = new Map<string, number>();
    for (const j of jobs) {
      const succeeded = Math.max(0, j.succeeded);
      after.set(j.jobName, Math.max(succeeded, before.get(j.jobName) ?? 0));
      if (first) continue;
      for (let n = succeeded - (before.get(j.jobName) ?? 0); n > 0; n--) {
        const credits = this.fresh(this.credits, j.queue, (t) => now - t <= this.creditMs);
        if (credits.length > 0) credits.shift();
        else this.list(this.exits, j.queue).push(now);
      }
    }
    this.seen = after;
  }

  /** An event applied to the ledger (not a duplicate): its queue, kind and provider time (epoch ms). */
  applied(queue: string, kind: string, occurredAt: number, now: number): void {
    if (Number.isFinite(occurredAt)) this.caughtUp.set(queue, Math.max(this.caughtUp.get(queue) ?? 0, occurredAt));
    if (kind !== 'finished' && kind !== 'cancelled') return;
    const exits = this.list(this.exits, queue);
    if (exits.length > 0) exits.shift();
    else this.list(this.credits, queue).push(now);
  }

  /**
   * A drain ended knowing every event sent to the events queue before `upTo` applied (its lag:
   * upTo = now - lagMs; an empty queue: now). An exit seen marginMs before that whose finished
   * event is still not applied was no CI job's (an agent that left idle, a warm one): forgotten
   * even when no event comes to move the queue's caughtUp (a quiet queue).
   */
  drained(upTo: number): void {
    this.drainedUpTo = Math.max(this.drainedUpTo, upTo);
  }

  /**
   * Agents of `queue` whose CI job's `finished`/`cancelled` was applied within creditMs and whose
   * exit is not seen yet: leaving, though they count as idle supply until their pod ends.
   */
  leaving(queue: string, now: number): number {
    return this.fresh(this.credits, queue, (t) => now - t <= this.creditMs).length;
  }

  /** Unexplained exits of `queue` at `now`: CI jobs the ledger counts open that need no agent. */
  count(queue: string, now: number): number {
    const caughtUp = Math.max(this.caughtUp.get(queue) ?? 0, this.drainedUpTo);
    return this.fresh(this.exits, queue, (t) => now - t <= this.maxAgeMs && caughtUp < t + this.marginMs).length;
  }

  private list(table: Map<string, number[]>, queue: string): number[] {
    let list = table.get(queue);
    if (!list) {
      list = [];
      table.set(queue, list);
    }
    return list;
  }

  /** The queue's list without its leading entries that no longer `hold` (oldest first). */
  private fresh(table: Map<string, number[]>, queue: string, hold: (t: number) => boolean): number[] {
    const list = this.list(table, queue);
    let stale = 0;
    while (stale < list.length && !hold(list[stale] as number)) stale++;
    if (stale > 0) list.splice(0, stale);
    return list;
  }
}
