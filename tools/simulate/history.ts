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
