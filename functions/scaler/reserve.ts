/**
 * Stage 4, reserve: takes a queue's tokens with one conditional write that also records the
 * dispatch (status intent, a deterministic id), re-reading the limiter and deciding again when a
 * concurrent scaler moved the counter; a dispatch reserved goes straight to submit.
 */
import type { Decision } from '../core/decision.js';
import { CREATE_ISSUE_SLACK_MS, intentCreateGraceMs } from '../core/limiter.js';
import type { DispatchRecord, LimiterRecord, LimiterStore } from '../core/stores.js';
import type { QueueDecider } from './decide.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';
import type { QueueView } from './reconcile.js';
import type { Submitter } from './submit.js';

export interface Reserved {
  /** The last decision made (after any re-read). */
  readonly decision: Decision;
  /** Agents reserved (and submitted): the decision's count, or 0 when every attempt conflicted. */
  readonly reserved: number;
}

export async function reserve(
  ports: ScalerPorts,
  settings: ScalerSettings,
  decider: QueueDecider,
  reconciled: QueueView | undefined,
  submitter: Submitter,
): Promise<Reserved> {
  const { limiter, jobs } = ports;
  const { queue, limits } = decider;
  const graceMs = intentCreateGraceMs(settings.intentLeaseMs);
  let view = reconciled ?? { inFlight: 0, version: 0, settled: true };
  let decision = decider.decide(view.inFlight);
  let made = 0;
  const attempts = settings.reserveAttempts ?? 4;
  for (let attempt = 0; attempt < attempts && decision.count > 0; attempt++) {
    if (!view.settled) {
      // Our correction did not land (a concurrent scaler moved the counter): decide on the
      // limiter's own counter, which only ever overstates what is in flight.
      const fresh = await readLimiter(limiter, queue);
      view = { inFlight: Math.max(fresh.inFlight, view.inFlight), version: fresh.version, settled: true };
      decision = decider.decide(view.inFlight);
      if (decision.count === 0) break;
    }
    const dispatchId = String(view.version + 1);
    const now = ports.now();
    const dispatch: DispatchRecord = {
      queue,
      dispatchId,
      jobName: jobs.jobName(queue, dispatchId),
      count: decision.count,
      tokens: decision.count,
      status: 'intent',
      createdAt: now,
      leaseUntil: now + settings.intentLeaseMs,
      // The conditional write that reserves the tokens fences the first create.
      attempts: 1,
      settled: 0,
      createsUntil: now + CREATE_ISSUE_SLACK_MS + graceMs,
    };
    const result = await limiter.reserve({
      queue,
      count: decision.count,
      max: limits.maxAgents,
      expectedVersion: view.version,
      dispatch,
    });
    if (result === 'reserved') {
      made = decision.count;
      await submitter.submit(dispatch, now);
      break;
    }
    view.settled = false;
  }
  return { decision, reserved: made };
}

async function readLimiter(limiter: LimiterStore, queue: string): Promise<LimiterRecord> {
  const snapshot = await limiter.snapshot();
  return snapshot.limiters.find((l) => l.queue === queue) ?? { queue, inFlight: 0, version: 0 };
}
