/**
 * Traces of CI jobs for the simulator: the JSON-lines file format and seeded generators.
 *
 * One JSON object per line, one line per CI job (blank lines and lines starting with # ignored):
 *   { "at": 12.5, "queue": "default", "duration": 180, "cancelAt": 30, "duplicates": 2, "reorder": true, "id": "job-7" }
 *   at          seconds from the start of the simulation when the CI system schedules the job
 *   queue       the CI queue (default "default")
 *   duration    seconds the job runs once an agent has taken it
 *   cancelAt    optional: seconds from the start when the job is cancelled (if still waiting it
 *               never starts; if running it stops then)
 *   duplicates  optional: each webhook of this job is delivered this many extra times
 *   reorder     optional: each webhook of this job is delayed by a random 0..reorder-window
 *               seconds, so its deliveries can arrive out of order (started before scheduled, ...)
 *   id          optional job id (default: line number)
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export interface TraceJob {
  readonly id: string;
  readonly at: number;
  readonly queue: string;
  readonly duration: number;
  readonly cancelAt?: number;
  readonly duplicates?: number;
  readonly reorder?: boolean;
}

const LineSchema = z
  .object({
    id: z.union([z.string().min(1), z.number()]).optional(),
    at: z.number().finite().min(0),
    queue: z.string().min(1).default('default'),
    duration: z.number().finite().min(0),
    cancelAt: z.number().finite().min(0).optional(),
    duplicates: z.number().int().min(0).max(100).optional(),
    reorder: z.boolean().optional(),
  })
  .strict();

/** Parses a JSON-lines trace; throws with the line number of the first bad line. */
export function parseTrace(text: string): TraceJob[] {
  const jobs: TraceJob[] = [];
  const ids = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new Error(`trace line ${i + 1}: not JSON (${(e as Error).message})`);
    }
    const parsed = LineSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(`trace line ${i + 1}: ${issue?.path.join('.') || 'line'}: ${issue?.message ?? 'invalid'}`);
    }
    const p = parsed.data;
    const id = p.id === undefined ? `job-${i + 1}` : String(p.id);
    if (ids.has(id)) throw new Error(`trace line ${i + 1}: duplicate id ${JSON.stringify(id)}`);
    ids.add(id);
    jobs.push({
      id,
      at: p.at,
      queue: p.queue,
      duration: p.duration,
      ...(p.cancelAt !== undefined ? { cancelAt: p.cancelAt } : {}),
      ...(p.duplicates ? { duplicates: p.duplicates } : {}),
      ...(p.reorder ? { reorder: true } : {}),
    });
  });
  return jobs.sort((a, b) => a.at - b.at);
}

export function readTrace(path: string): TraceJob[] {
  return parseTrace(readFileSync(path, 'utf8'));
}

export function formatTrace(jobs: readonly TraceJob[]): string {
  return `${jobs.map((j) => JSON.stringify(j)).join('\n')}\n`;
}

/** mulberry32: small, fast, seeded PRNG in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A deterministic number in [0, 1) from a seed and a key (same key, same value, whatever the order of calls). */
export function hashUnit(seed: number, key: string): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  return rng(h)();
}

export const GENERATORS = ['steady', 'bursty', 'diurnal'] as const;
export type GeneratorName = (typeof GENERATORS)[number];

export interface GenerateOptions {
  readonly jobs: number;
  readonly seed: number;
  readonly queue?: string;
  /** Fraction of jobs cancelled (half before they would start, half while running). Default 0.03. */
  readonly cancelFraction?: number;
  /** Fraction of jobs whose webhooks are delivered twice. Default 0.05. */
  readonly duplicateFraction?: number;
  /** Fraction of jobs whose webhooks may arrive out of order. Default 0.05. */
  readonly reorderFraction?: number;
}

/** Job duration: log-normal, median 3 minutes, clamped to [15 s, 40 min], whole seconds. */
function duration(r: () => number): number {
  const u1 = Math.max(r(), 1e-12);
  const u2 = r();
  const normal = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return Math.round(Math.min(2400, Math.max(15, 180 * Math.exp(0.7 * normal))));
}

/** The generators' shapes (also the arrival models of bound.ts). */
export const STEADY = { meanGapSeconds: 20 } as const;
export const BURSTY = { peakSeconds: 1200, endSeconds: 3600, fanOutMin: 5, fanOutMax: 30, spreadSeconds: 5 } as const;
export const DIURNAL = { daySeconds: 86_400, peakSeconds: 14 * 3600, amplitude: 0.95 } as const;

/**
 * Built-in traces, seeded and deterministic (same options, same trace):
 * - steady:  Poisson arrivals at 3 jobs a minute.
 * - bursty:  "Monday morning": builds that each fan out 5-30 jobs within a few seconds, build
 *            arrivals ramping up from a quiet start to a peak around minute 20, then easing off.
 * - diurnal: one day: arrivals follow a day/night curve (peak at 14:00, near zero at 02:00).
 */
export function generateTrace(name: GeneratorName, options: GenerateOptions): TraceJob[] {
  const r = rng(options.seed);
  const n = Math.max(0, Math.floor(options.jobs));
  const queue = options.queue ?? 'default';
  const times: number[] = [];
  switch (name) {
    case 'steady': {
      let t = 0;
      for (let i = 0; i < n; i++) {
        t += -Math.log(1 - r()) * STEADY.meanGapSeconds;
        times.push(t);
      }
      break;
    }
    case 'bursty': {
      // Build arrival intensity: triangular, 0 at t=0, peak at 20 min, back to a trickle at 60 min.
      while (times.length < n) {
        const u = r();
        const peak = BURSTY.peakSeconds;
        const end = BURSTY.endSeconds;
        // Inverse CDF of the triangular distribution on [0, end] with mode `peak`.
        const start = u < peak / end ? Math.sqrt(u * end * peak) : end - Math.sqrt((1 - u) * end * (end - peak));
        const fanOut = BURSTY.fanOutMin + Math.floor(r() * (BURSTY.fanOutMax - BURSTY.fanOutMin + 1));
        for (let k = 0; k < fanOut && times.length < n; k++) times.push(start + r() * BURSTY.spreadSeconds);
      }
      break;
    }
    case 'diurnal': {
      // Density proportional to 1 + 0.95 * cos(2π (t - 14h) / 24h), sampled by rejection.
      const day = DIURNAL.daySeconds;
      const a = DIURNAL.amplitude;
      while (times.length < n) {
        const t = r() * day;
        const density = (1 + a * Math.cos((2 * Math.PI * (t - DIURNAL.peakSeconds)) / day)) / (1 + a);
        if (r() < density) times.push(t);
      }
      break;
    }
  }
  times.sort((a, b) => a - b);
  const cancelFraction = options.cancelFraction ?? 0.03;
  const duplicateFraction = options.duplicateFraction ?? 0.05;
  const reorderFraction = options.reorderFraction ?? 0.05;
  return times.map((t, i) => {
    const at = Math.round(t * 10) / 10;
    const d = duration(r);
    const cancel = r() < cancelFraction;
    const cancelAt = cancel ? Math.round((at + (r() < 0.5 ? r() * 20 : 30 + r() * d)) * 10) / 10 : undefined;
    const duplicates = r() < duplicateFraction ? 1 : 0;
    const reorder = r() < reorderFraction;
    return {
      id: `${name}-${i + 1}`,
      at,
      queue,
      duration: d,
      ...(cancelAt !== undefined ? { cancelAt } : {}),
      ...(duplicates ? { duplicates } : {}),
      ...(reorder ? { reorder } : {}),
    };
  });
}
