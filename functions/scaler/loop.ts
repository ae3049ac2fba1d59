/** The loop of one scaler invocation: it ticks (scaler.ts) until the invocation's budget is spent. */
import { describeError } from '../shared/errors.js';
import { nextDrainBudgetMs } from './drain.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';
import { type TickReport, tick } from './scaler.js';

/** Longest pause between the starts of two ticks while events keep arriving (see tickSpacingMs). */
export const MAX_TICK_SPACING_MS = 250;
/** CI jobs a tick should carry, spreading its fixed AWS requests (see tickSpacingMs). */
export const JOBS_PER_TICK = 4;
/** How far back the arrival rate is measured. */
const RATE_WINDOW_MS = 2_000;

/** A tick's start and the `scheduled` events it applied. */
export interface TickArrivals {
  readonly at: number;
  readonly scheduled: number;
}

/**
 * How long after the start of the last tick the next one starts, while events keep arriving.
 * A tick costs about eight AWS requests whatever it carries (the limiter's two and the ledger's
 * two reads, receive, apply, delete, and a Job's reserve, submitted and release): back to back
 * under a trickle of CI jobs, that is eight per job. Spaced so that a tick carries JOBS_PER_TICK
 * CI jobs at the recent arrival rate, they cost about two each; the spacing shrinks as the rate
 * grows (20 ms at 200 jobs/s) and never exceeds MAX_TICK_SPACING_MS, the most it adds to a
 * webhook's way to its agent (a pod's start-up takes seconds). Ticks that applied no `scheduled`
 * event (rate 0) wait the longest: what they carry adds no demand (scaler.ts tick).
 */
export function tickSpacingMs(recent: readonly TickArrivals[], now: number): number {
  const window = recent.filter((t) => t.at > now - RATE_WINDOW_MS);
  const [first, ...later] = window;
  // What the later ticks applied arrived after the first one started.
  const scheduled = later.reduce((n, t) => n + t.scheduled, 0);
  if (!first || scheduled === 0) return MAX_TICK_SPACING_MS;
  const perMs = scheduled / Math.max(now - first.at, 1);
  return Math.min(MAX_TICK_SPACING_MS, Math.round(JOBS_PER_TICK / perMs));
}

/**
 * Keeps ticking until the budget is spent: the first tick at once, then each one as soon as an
 * event arrives (long poll), or after pollSeconds without one; while events keep arriving, no
 * sooner than tickSpacingMs after the previous one started. While CI jobs are waiting for an
 * agent, it re-ticks at least every busyPollSeconds: an agent that just finished a CI job still
 * looks idle until its pod's exit shows in the Job status, and only a fresh look at the cluster
 * sees it go. The last long poll uses whatever budget is left, so a one-minute schedule with a
 * budget close to a minute leaves almost no gap between invocations. Sub-minute scale-up.
 * Each tick drains for twice as long as the previous tick's provisioning took (drain.ts
 * nextDrainBudgetMs): short ticks under a steady stream, long drains when provisioning is slow.
 * A tick that drained no `scheduled` event does not provision at once (scaler.ts tick); the next
 * provisioning is then due within busyPollSeconds at the latest.
 */
export async function run(
  ports: ScalerPorts,
  settings: ScalerSettings,
  options: { budgetMs: number; pollSeconds: number; busyPollSeconds?: number; signal?: AbortSignal },
): Promise<TickReport[]> {
  const deadline = ports.now() + options.budgetMs;
  const busyPoll = Math.min(options.pollSeconds, options.busyPollSeconds ?? 2);
  const sleep = (ms: number) => (ports.sleep ? ports.sleep(ms) : new Promise((resolve) => setTimeout(resolve, ms)));
  const reports: TickReport[] = [];
  let lastError: unknown;
  let waitSeconds = 0;
  let drainBudgetMs = nextDrainBudgetMs(undefined, settings.drainBudgetMs);
  let waiting = false;
  let provisionDueAt: number | undefined;
  let recent: TickArrivals[] = [];
  for (;;) {
    let failed = false;
    let gather = false;
    const startedAt = ports.now();
    try {
      const report = await tick(ports, settings, {
        waitSeconds,
        deadline,
        drainBudgetMs,
        ...(provisionDueAt === undefined ? {} : { provisionDueAt }),
      });
      reports.push(report);
      // Events are flowing and the queue looked drained: let the next ones gather.
      gather = report.drain.received > 0 && !report.drain.backlog;
      recent = [
        ...recent.filter((t) => t.at > startedAt - RATE_WINDOW_MS),
        { at: startedAt, scheduled: report.drain.scheduled },
      ];
      if (report.provisioned) {
        drainBudgetMs = nextDrainBudgetMs(report.provisionMs, settings.drainBudgetMs);
        // CI jobs waiting for an agent, or the warm pool timing agents' start-up: look again soon.
        waiting = report.decisions.some((d) => d.pending > 0) || ports.warmPool?.starting(ports.now()) === true;
        provisionDueAt = ports.now() + (waiting ? busyPoll : options.pollSeconds) * 1000;
      } else {
        // What it skipped is still looked at within busyPoll: a `finished` agent's pod exits (its
        // tokens come back, a MIN_AGENTS floor needs a new one), a `started` job whose
        // `scheduled` was lost or is late is running on an agent thought idle.
        provisionDueAt = Math.min(provisionDueAt ?? Number.POSITIVE_INFINITY, ports.now() + busyPoll * 1000);
      }
    } catch (e) {
      // A failed tick (cluster, SQS or DynamoDB unreachable, ...) leaves nothing the next one
      // cannot repair: keep ticking, and fail the invocation only if no tick succeeded.
      failed = true;
      lastError = e;
      provisionDueAt = undefined;
      ports.log.error('scaler tick failed', { error: describeError(e) });
    }
    if (options.signal?.aborted || deadline - ports.now() < 1000) break;
    if (failed) {
      // Back off before retrying: the failure may have been the long poll itself.
      // ... leaving a second for the next tick, or stop.
      const pauseSeconds = Math.min(waiting ? busyPoll : options.pollSeconds, 5, (deadline - ports.now()) / 1000 - 1);
      if (pauseSeconds <= 0) break;
      await sleep(pauseSeconds * 1000);
      waitSeconds = 0;
      continue;
    }
    // (A tick whose long poll waited past the spacing, the first of a busy spell, is not held.)
    const spacing = startedAt + tickSpacingMs(recent, ports.now()) - ports.now();
    if (gather && spacing > 0) await sleep(spacing);
    const secondsLeft = Math.floor((deadline - ports.now()) / 1000);
    if (options.signal?.aborted || secondsLeft < 1) break;
    // Long-poll until the next provisioning is due (to the nearest second: SQS's unit).
    const dueIn = provisionDueAt === undefined ? 0 : Math.max(0, provisionDueAt - ports.now());
    waitSeconds = Math.min(Math.round(dueIn / 1000), secondsLeft);
  }
  if (reports.length === 0 && lastError !== undefined) throw lastError;
  return reports;
}
