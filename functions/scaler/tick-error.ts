/**
 * A failure a tick goes on after (TickReport.failures): which stage, which queue, whether the
 * next tick may succeed where this one failed, the error itself, and the text logged and
 * reported (TickReport.errors): `<what>: <the error described>`.
 */
import { describeError } from '../shared/errors.js';

export type TickStage = 'drain' | 'reconcile' | 'decide' | 'reserve' | 'submit' | 'providers';

export interface TickError {
  readonly stage: TickStage;
  readonly queue?: string;
  /** False when doing the same again cannot succeed (a create the API server refused). */
  readonly retryable: boolean;
  readonly cause: unknown;
  readonly message: string;
}

/** A tick's failures so far: each stage adds its own. */
export type TickErrors = TickError[];

/** The failure of `what` (its message `<what>: <cause described>`), retryable unless said. */
export function tickError(
  stage: TickStage,
  what: string,
  cause: unknown,
  where: { readonly queue?: string; readonly retryable?: boolean } = {},
): TickError {
  return {
    stage,
    ...(where.queue === undefined ? {} : { queue: where.queue }),
    retryable: where.retryable ?? true,
    cause,
    message: `${what}: ${describeError(cause)}`,
  };
}
