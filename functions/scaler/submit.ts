/**
 * Stage 5, submit: creates the ONE Kubernetes Job of a dispatch (with the provider's hooks around
 * the create: ports.ts DispatchHooks) and marks the dispatch submitted.
 * Every create is fenced first (by reserve's conditional write, or by resubmit's beginCreate) and
 * is issued only inside that fence's window (core/limiter.ts), so a create can never land after
 * the dispatch's tokens were returned.
 */
import { createsUntilFor, intentCreateGraceMs, mayCreate, mayIssue } from '../core/limiter.js';
import type { DispatchRecord } from '../core/stores.js';
import { describeError } from '../shared/errors.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';
import { hooksFor } from './provider-ports.js';
import { type TickErrors, tickError } from './tick-error.js';

export interface CreatedJob {
  readonly queue: string;
  readonly jobName: string;
  readonly count: number;
  readonly result: 'created' | 'exists';
}

export interface Submitter {
  /** The Jobs created (or found already there) this tick. */
  readonly created: readonly CreatedJob[];
  /** Issues the create of a dispatch fenced at `fencedAt`, then marks the dispatch submitted. */
  submit(dispatch: DispatchRecord, fencedAt: number): Promise<void>;
  /** A dispatch still in status intent: fences one more create (conditional write), then submits it. */
  resubmit(dispatch: DispatchRecord): Promise<void>;
}

/** One tick's submitter; its failures go to `errors` (the tick's report). */
export function submitter(ports: ScalerPorts, settings: ScalerSettings, errors: TickErrors): Submitter {
  const { limiter, cluster, jobs, log } = ports;
  const graceMs = intentCreateGraceMs(settings.intentLeaseMs);
  const created: CreatedJob[] = [];

  const submit = async (dispatch: DispatchRecord, fencedAt: number): Promise<void> => {
    // Checked again right before the call: the snapshot may be older than the grace period, and
    // the fence's createsUntil holds only for a create issued promptly after it.
    const now = ports.now();
    if (!mayCreate(dispatch, now, graceMs) || !mayIssue(fencedAt, now)) return;
    let result: 'created' | 'exists';
    let creating = false;
    const hooks = hooksFor(ports, dispatch.queue);
    try {
      let job = jobs.build(dispatch);
      if (hooks) {
        job = await hooks.beforeCreate(dispatch, job);
        // Minting may have taken longer than the fence allows (a big batch, a slow provider): the
        // create is then left to the next tick, whose hook finds the credentials ready at once.
        const after = ports.now();
        if (!mayCreate(dispatch, after, graceMs) || !mayIssue(fencedAt, after)) return;
      }
      creating = true;
      result = await cluster.createJob(job);
      creating = false;
      ports.backoff?.created(dispatch.queue, dispatch.jobName, ports.now());
      // Before markSubmitted: if this fails, the next tick finds the Job still in status intent and retries it.
      await hooks?.afterCreate(dispatch);
    } catch (e) {
      // The tokens stay reserved: the dispatch is retried next tick and released when its lease
      // expires. A create refused with a 4xx can no longer land: settled. Without an answer (or
      // a 5xx) it may still land, until the fence's createsUntil.
      if (refusedByServer(e)) {
        await limiter.settleCreate(dispatch, false).catch((f: unknown) => {
          errors.push(tickError('submit', `settle ${dispatch.jobName}`, f, { queue: dispatch.queue }));
        });
        // What the provider made for this Job (GitHub: its Secrets) is cleaned up.
        if (creating)
          await hooks?.createFailed?.(dispatch).catch((f: unknown) => {
            errors.push(tickError('submit', `clean up after ${dispatch.jobName}`, f, { queue: dispatch.queue }));
          });
      }
      errors.push(
        tickError('submit', `create ${dispatch.jobName}`, e, { queue: dispatch.queue, retryable: !refusedByServer(e) }),
      );
      log.warn('agent Job not created; intent kept for retry', {
        queue: dispatch.queue,
        jobName: dispatch.jobName,
        error: describeError(e),
      });
      return;
    }
    created.push({ queue: dispatch.queue, jobName: dispatch.jobName, count: dispatch.count, result });
    // If this fails the Job still exists: the next tick sees it and marks the dispatch submitted;
    // its tokens are then held until the fence's createsUntil.
    await limiter.settleCreate(dispatch, true).catch((e: unknown) => {
      errors.push(tickError('submit', `mark ${dispatch.jobName} submitted`, e, { queue: dispatch.queue }));
    });
  };

  const resubmit = async (dispatch: DispatchRecord): Promise<void> => {
    const fencedAt = ports.now();
    if (!mayCreate(dispatch, fencedAt, graceMs)) return;
    const createsUntil = createsUntilFor(dispatch, fencedAt, graceMs);
    // Refused: another scaler fenced a create of it since our snapshot, or it was submitted or
    // released. Either way that scaler's create (or none) is the one to issue.
    if (!(await limiter.beginCreate(dispatch, createsUntil))) return;
    await submit({ ...dispatch, attempts: (dispatch.attempts ?? 1) + 1, createsUntil }, fencedAt);
  };

  return { created, submit, resubmit };
}

/** A create the API server answered with a 4xx (not 408): it was refused and will never land. */
function refusedByServer(e: unknown): boolean {
  const status = (e as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 408;
}
