/**
 * Shrinking a failing schedule: its recorded choice list is made shorter and simpler (chunks
 * deleted, chunks and single values lowered towards 0, the simplest choice) as long as the replay
 * still breaks the SAME invariant. The result replays exactly: `npm run chaos -- --replay <file>`.
 */
import { runSchedule, type ScheduleOptions, type ScheduleResult, type Violation } from './model.js';

export interface ShrinkOptions {
  /** Give up after this many replays (default 3000). */
  readonly maxRuns?: number;
  /** ... or after this long (default 30 s). */
  readonly timeMs?: number;
  /** Options of the failing schedule (e.g. a sabotage), kept for every replay. */
  readonly schedule?: Pick<ScheduleOptions, 'sabotage'>;
}

export interface Shrunk {
  readonly seed: number;
  readonly invariant: Violation['invariant'];
  readonly choices: number[];
  readonly result: ScheduleResult;
  readonly runs: number;
}

function trimZeros(choices: readonly number[]): number[] {
  let end = choices.length;
  while (end > 0 && choices[end - 1] === 0) end--;
  return choices.slice(0, end);
}

export async function shrink(failing: ScheduleResult, options: ShrinkOptions = {}): Promise<Shrunk> {
  const target = failing.violation?.invariant;
  if (!target) throw new Error('shrink: the schedule did not fail');
  const maxRuns = options.maxRuns ?? 3000;
  const until = performance.now() + (options.timeMs ?? 30_000);
  let runs = 0;
  let best = trimZeros(failing.choices);
  let bestResult = failing;
  const budget = () => runs < maxRuns && performance.now() < until;

  /** Keeps `candidate` when it still breaks the target invariant. */
  const attempt = async (candidate: number[]): Promise<boolean> => {
    if (!budget()) return false;
    runs++;
    const r = await runSchedule({ ...options.schedule, seed: failing.seed, replay: candidate });
    if (r.violation?.invariant !== target) return false;
    // Every candidate is smaller than `best` (a chunk deleted, values lowered): keep it, cut to
    // the choices the replay really used.
    const used = trimZeros(r.choices);
    best = used.length < candidate.length ? used : trimZeros(candidate);
    bestResult = r;
    return true;
  };

  let progress = true;
  while (progress && budget()) {
    progress = false;
    // 1. The shortest prefix that still fails (past its end every choice is the simplest).
    let lo = 0;
    let hi = best.length;
    while (lo < hi && budget()) {
      const mid = (lo + hi) >> 1;
      if (await attempt(best.slice(0, mid))) {
        progress = true;
        hi = Math.min(mid, best.length);
      } else lo = mid + 1;
    }
    // 2. Zero chunks (no fault, fewest jobs, first pending call), big ones first.
    for (let size = Math.max(1, best.length >> 1); size >= 1 && budget(); size >>= 1) {
      for (let i = 0; i < best.length && budget(); i += size) {
        if (best.slice(i, i + size).every((v) => v === 0)) continue;
        const candidate = [...best];
        for (let k = i; k < Math.min(best.length, i + size); k++) candidate[k] = 0;
        if (await attempt(candidate)) progress = true;
      }
    }
    // 3. Delete chunks.
    for (let size = Math.max(1, best.length >> 2); size >= 1 && budget(); size >>= 1) {
      for (let i = 0; i + size <= best.length && budget(); ) {
        if (await attempt([...best.slice(0, i), ...best.slice(i + size)])) progress = true;
        else i += size;
      }
    }
    // 4. Lower single values.
    for (let i = 0; i < best.length && budget(); i++) {
      const v = best[i] ?? 0;
      if (v === 0) continue;
      for (const lower of [0, v >> 1, v - 1]) {
        if (lower >= v) continue;
        const candidate = [...best];
        candidate[i] = lower;
        if (await attempt(candidate)) {
          progress = true;
          break;
        }
      }
    }
  }
  return { seed: failing.seed, invariant: target, choices: best, result: bestResult, runs };
}

/** The steps worth reading: world events, writes, faults and crashes (plain reads left out). */
export function condensed(log: readonly string[]): string[] {
  const plain = /inv\d+ (limiter\.snapshot|ledger\.counts|kube\.list|sqs\.receive wait=\S+|sqs\.delete \S+|sleep \d+)$/;
  return log.filter((line) => !plain.test(line) && !/ {2}-> /.test(line));
}

/** A failing schedule as a replayable report: the seed, the invariant, the choice list and the steps. */
export async function report(failing: ScheduleResult, options: ShrinkOptions = {}): Promise<string> {
  const shrunk = await shrink(failing, options);
  const traced = await runSchedule({ ...options.schedule, seed: shrunk.seed, replay: shrunk.choices, trace: true });
  const replay = JSON.stringify({ seed: shrunk.seed, invariant: shrunk.invariant, choices: shrunk.choices });
  return [
    `seed ${failing.seed} breaks "${failing.violation?.invariant}": ${failing.violation?.message}`,
    `minimal schedule (${shrunk.choices.length} choices, ${shrunk.runs} replays to shrink): ${traced.violation?.message ?? '(replay passed!)'}`,
    `replay: save this line to a file and run  npm run chaos -- --replay <file>`,
    replay,
    'steps (reads without a fault left out):',
    ...condensed(traced.log),
  ].join('\n');
}
