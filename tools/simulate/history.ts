/**
 * The past a warm pool learns from (core/arrival-model.ts): earlier days of the same generator,
 * drawn with OTHER seeds than the scored day's, as a deployment learns from its past weeks. Day k
 * before the scored one starts k days before it (same time of day), so its buckets of the day line
 * up with the scored day's. Never the scored day's own arrivals: each training day's seed differs
 * from the scored seed (trainingSeeds).
 */
import { ArrivalModel, type ArrivalModelOptions, DAY_MS } from '../../functions/core/arrival-model.js';
import { type GeneratorName, generateTrace, type TraceJob } from './trace.js';

/** One past day: its jobs (times from `startMs`, epoch ms). */
export interface HistoryDay {
  readonly startMs: number;
  readonly jobs: readonly TraceJob[];
}

/** Days of history learned by default (two weeks). */
export const DEFAULT_HISTORY_DAYS = 14;

/** The seeds of the `days` training days before a day scored with `seed`: never `seed` itself. */
export function trainingSeeds(seed: number, days: number): number[] {
  return Array.from({ length: Math.max(0, Math.floor(days)) }, (_, k) => seed + 1 + k);
}

/** `days` earlier days of the generator (same job count, other seeds), ending the day before `epochMs`. */
export function generatorHistory(
  name: GeneratorName,
  jobs: number,
  seed: number,
  epochMs: number,
  days = DEFAULT_HISTORY_DAYS,
): HistoryDay[] {
  return trainingSeeds(seed, days).map((s, k) => ({
    startMs: epochMs - (k + 1) * DAY_MS,
    jobs: generateTrace(name, { jobs, seed: s }),
  }));
}

/** An arrival model trained on the days (each learned whole, per queue), scored days learning nothing. */
export function trainedModel(
  history: readonly HistoryDay[],
  horizonSeconds: number,
  options: ArrivalModelOptions = {},
): ArrivalModel {
  const model = new ArrivalModel({ ...options, learnOnline: false });
  for (const day of [...history].sort((a, b) => a.startMs - b.startMs)) {
    const byQueue = new Map<string, number[]>();
    for (const j of day.jobs) byQueue.set(j.queue, [...(byQueue.get(j.queue) ?? []), day.startMs + j.at * 1000]);
    for (const [queue, arrivals] of byQueue)
      model.learnPeriod(queue, day.startMs, day.startMs + DAY_MS, arrivals, horizonSeconds);
  }
  return model;
}

/** A replayed history scored on one day, and the days before it that ours-warm learns from. */
export interface ScoredReplay {
  /** The scored day's jobs, t = 0 at its midnight (UTC). */
  readonly trace: TraceJob[];
  /** Whole days before it, as the simulator's clock sees them (the scored midnight = `epochMs`). */
  readonly history: HistoryDay[];
  /** Epoch ms of the scored day's midnight (UTC). */
  readonly dayMs: number;
}

/**
 * A replayed history (replay.ts) scored on one UTC day, `day` (YYYY-MM-DD), as a deployment that
 * kept its past weeks would be: the trace is that day's jobs (those that began waiting on it), and
 * ours-warm learns from up to `days` whole days before it, from the day of the file's first job
 * (a day of the file without jobs is learned as a day without arrivals). The scored day and
 * the days after it are never learned. Times keep their time of day: the scored midnight is the
 * simulator's `epochMs`, day k before it starts k days earlier.
 */
export function scoredReplay(
  replay: { readonly jobs: readonly TraceJob[]; readonly startMs: number },
  day: string,
  epochMs: number,
  days = DEFAULT_HISTORY_DAYS,
): ScoredReplay {
  const dayMs = /^\d{4}-\d{2}-\d{2}$/.test(day) ? Date.parse(`${day}T00:00:00Z`) : Number.NaN;
  if (!Number.isFinite(dayMs)) throw new Error(`--score-day must be a UTC date YYYY-MM-DD, got "${day}"`);
  const absolute = (j: TraceJob) => replay.startMs + j.at * 1000;
  const shifted = (j: TraceJob, fromMs: number): TraceJob => {
    const by = (replay.startMs - fromMs) / 1000;
    const s = (t: number) => Math.round((t + by) * 10) / 10;
    return { ...j, at: s(j.at), ...(j.cancelAt !== undefined ? { cancelAt: s(j.cancelAt) } : {}) };
  };
  const within = (fromMs: number) =>
    replay.jobs.filter((j) => absolute(j) >= fromMs && absolute(j) < fromMs + DAY_MS).map((j) => shifted(j, fromMs));
  const trace = within(dayMs);
  if (trace.length === 0) {
    const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const last = replay.jobs.reduce((m, j) => Math.max(m, absolute(j)), replay.startMs);
    throw new Error(
      `--score-day ${day}: no job of the file waits on that day (its jobs wait from ${iso(replay.startMs)} to ${iso(last)})`,
    );
  }
  const firstDayMs = Math.floor(replay.startMs / DAY_MS) * DAY_MS;
  const learned = Math.max(0, Math.min(Math.floor(days), Math.round((dayMs - firstDayMs) / DAY_MS)));
  const history = Array.from({ length: learned }, (_, i) => ({
    startMs: epochMs - (i + 1) * DAY_MS,
    jobs: within(dayMs - (i + 1) * DAY_MS),
  }));
  return { trace, history, dayMs };
}
