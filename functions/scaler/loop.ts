/** The loop of one scaler invocation: it ticks (scaler.ts) until the invocation's budget is spent. */
import { describeError } from '../shared/errors.js';
import { nextDrainBudgetMs } from './drain.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';
import { type TickReport, tick } from './scaler.js';

/**
 * Keeps ticking until the budget is spent: the first tick at once, then each one as soon as an
 * event arrives (long poll), or after pollSeconds without one. While CI jobs are waiting for an
 * agent, it re-ticks at least every busyPollSeconds: an agent that just finished a CI job still
 * looks idle until its pod's exit shows in the Job status, and only a fresh look at the cluster
 * sees it go. The last long poll uses whatever budget is left, so a one-minute schedule with a
 * budget close to a minute leaves almost no gap between invocations. Sub-minute scale-up.
 * Each tick drains for twice as long as the previous tick's provisioning took (drain.ts
 * nextDrainBudgetMs): short ticks under a steady stream, long drains when provisioning is slow.
 */
export async function run(
  ports: ScalerPorts,
  settings: ScalerSettings,
  options: { budgetMs: number; pollSeconds: number; busyPollSeconds?: number; signal?: AbortSignal },
): Promise<TickReport[]> {
  const deadline = ports.now() + options.budgetMs;
  const busyPoll = Math.min(options.pollSeconds, options.busyPollSeconds ?? 2);
  const reports: TickReport[] = [];
  let lastError: unknown;
  let waitSeconds = 0;
  let drainBudgetMs = nextDrainBudgetMs(undefined, settings.drainBudgetMs);
  for (;;) {
    let waiting = false;
    let failed = false;
    try {
      const report = await tick(ports, settings, { waitSeconds, deadline, drainBudgetMs });
      drainBudgetMs = nextDrainBudgetMs(report.provisionMs, settings.drainBudgetMs);
      reports.push(report);
      waiting = report.decisions.some((d) => d.pending > 0);
    } catch (e) {
      // A failed tick (cluster, SQS or DynamoDB unreachable, ...) leaves nothing the next one
      // cannot repair: keep ticking, and fail the invocation only if no tick succeeded.
      failed = true;
      lastError = e;
      ports.log.error('scaler tick failed', { error: describeError(e) });
    }
    const secondsLeft = Math.floor((deadline - ports.now()) / 1000);
    if (options.signal?.aborted || secondsLeft < 1) break;
    waitSeconds = Math.min(waiting ? busyPoll : options.pollSeconds, secondsLeft);
    if (failed) {
      // Back off before retrying: the failure may have been the long poll itself.
      const ms = Math.min(waitSeconds, 5) * 1000;
      await (ports.sleep ? ports.sleep(ms) : new Promise((resolve) => setTimeout(resolve, ms)));
      waitSeconds = 0;
    }
  }
  if (reports.length === 0 && lastError !== undefined) throw lastError;
  return reports;
}
