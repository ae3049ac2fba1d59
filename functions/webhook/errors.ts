/**
 * The webhook's answers other than success: one error type per answer, thrown where the answer
 * is decided, turned into a response (and a log line) in one place, errorResponse().
 *   400 BadRequestError (from the provider modules, or an event that fails the last check)
 *   401 UnauthorizedError | 404 NotFoundError | 405 MethodNotAllowedError | 413 PayloadTooLargeError
 *   503 UnavailableError (SSM or SQS: the provider retries) | 500 anything else (a bug)
 */
import { boundedText } from '../core/job-event.js';
import { BadRequestError } from '../core/providers/types.js';
import { describeError } from '../shared/errors.js';

export { BadRequestError };

/** An answer the webhook gives on purpose: its status, message and extra headers. */
abstract class WebhookError extends Error {
  abstract readonly status: number;
  readonly headers: Readonly<Record<string, string>> = {};
}

export class UnauthorizedError extends WebhookError {
  readonly status = 401;
  constructor() {
    super('Unauthorized');
    this.name = 'UnauthorizedError';
  }
}

export class NotFoundError extends WebhookError {
  readonly status = 404;
  constructor() {
    super('Not found');
    this.name = 'NotFoundError';
  }
}

export class MethodNotAllowedError extends WebhookError {
  readonly status = 405;
  override readonly headers = { allow: 'POST' };
  constructor() {
    super('Method not allowed');
    this.name = 'MethodNotAllowedError';
  }
}

export class PayloadTooLargeError extends WebhookError {
  readonly status = 413;
  constructor(readonly maxBodyBytes: number) {
    super(`Body larger than ${maxBodyBytes} bytes`);
    this.name = 'PayloadTooLargeError';
  }
}

/** A dependency (SSM for the secret, SQS for the event) failed: 503, so the provider retries. */
export class UnavailableError extends WebhookError {
  readonly status = 503;
  override readonly headers = { 'retry-after': '5' };
  constructor(
    /** What failed, for the log: `secret` or `queue`. */
    readonly dependency: 'secret' | 'queue',
    override readonly cause: unknown,
  ) {
    super(dependency === 'queue' ? 'Could not record the event, retry later' : 'Temporarily unavailable, retry later');
    this.name = 'UnavailableError';
  }
}

/** The longest message or reason an answer or log line carries (they may quote the request). */
export const MAX_ANSWER_TEXT = 500;

export interface ErrorAnswer {
  readonly status: number;
  readonly body: { readonly message: string };
  readonly headers: Readonly<Record<string, string>>;
  /** How to log it: level, message and fields (never a secret: messages are ours). */
  readonly log: {
    readonly level: 'info' | 'warn' | 'error';
    readonly message: string;
    readonly fields: Record<string, unknown>;
  };
}

/** The one mapping from a thrown error to the webhook's answer and its log line. */
export function errorResponse(error: unknown): ErrorAnswer {
  if (error instanceof BadRequestError || error instanceof WebhookError) {
    const message = boundedText(error.message, MAX_ANSWER_TEXT);
    const headers = error instanceof WebhookError ? error.headers : {};
    if (error instanceof UnavailableError) {
      return {
        status: error.status,
        body: { message },
        headers,
        log: {
          level: 'error',
          message: `${error.dependency} unavailable`,
          fields: { error: boundedText(describeError(error.cause), MAX_ANSWER_TEXT) },
        },
      };
    }
    const level = error.status === 404 || error.status === 405 ? 'info' : 'warn';
    const reason =
      error instanceof UnauthorizedError
        ? 'authentication failed'
        : error instanceof BadRequestError
          ? message
          : undefined;
    return {
      status: error.status,
      body: { message },
      headers,
      log: { level, message: 'rejected', fields: reason === undefined ? {} : { reason } },
    };
  }
  return {
    status: 500,
    body: { message: 'Internal error' },
    headers: {},
    log: {
      level: 'error',
      message: 'unexpected error',
      fields: { error: boundedText(describeError(error), MAX_ANSWER_TEXT) },
    },
  };
}
