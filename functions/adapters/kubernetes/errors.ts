/** Typed errors of the Kubernetes adapter. */
import { ApiException } from '@kubernetes/client-node';

/** A Kubernetes API call that failed and will fail the same way again (4xx other than 408/429). */
export class KubeApiError extends Error {
  readonly retryable: boolean = false;
  constructor(
    message: string,
    /** HTTP status (0 when no response arrived). */
    readonly status: number,
    /** `reason` of the Status body (AlreadyExists, NotFound, Invalid, TooManyRequests, ...). */
    readonly reason?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KubeApiError';
  }
}

/** Worth retrying later: 408, 429, 5xx, timeouts and network errors. Nothing was lost. */
export class RetryableKubeError extends KubeApiError {
  override readonly retryable = true;
  constructor(
    message: string,
    status: number,
    reason?: string,
    /** From Retry-After or the Status details, when the server said. */
    readonly retryAfterSeconds?: number,
    options?: { cause?: unknown },
  ) {
    // The scaler logs the message: it says when the server asked to be retried.
    super(
      retryAfterSeconds === undefined ? message : `${message} (retry after ${retryAfterSeconds} s)`,
      status,
      reason,
      options,
    );
    this.name = 'RetryableKubeError';
  }
}

interface StatusLike {
  message?: string;
  reason?: string;
  details?: { retryAfterSeconds?: number };
}

function statusBody(body: unknown): StatusLike {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusLike;
    } catch {
      return { message: body.slice(0, 200) };
    }
  }
  return body && typeof body === 'object' ? (body as StatusLike) : {};
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
]);

/** Maps whatever the client threw to KubeApiError / RetryableKubeError. */
export function toKubeError(e: unknown, operation: string): KubeApiError {
  if (e instanceof KubeApiError) return e;
  if (e instanceof ApiException) {
    const code = (e as ApiException<unknown>).code;
    const status = statusBody((e as ApiException<unknown>).body);
    const headers = (e as ApiException<unknown>).headers ?? {};
    const message = `${operation}: HTTP ${code}${status.reason ? ` ${status.reason}` : ''}${status.message ? `: ${status.message}` : ''}`;
    if (code === 408 || code === 429 || code >= 500) {
      const header = Number(headers['retry-after'] ?? headers['Retry-After']);
      const retryAfter = Number.isFinite(header) && header >= 0 ? header : status.details?.retryAfterSeconds;
      return new RetryableKubeError(message, code, status.reason, retryAfter, { cause: e });
    }
    return new KubeApiError(message, code, status.reason, { cause: e });
  }
  const err = e as { name?: string; type?: string; code?: string; message?: string };
  if (err?.name === 'AbortError' || err?.type === 'aborted' || err?.name === 'TimeoutError') {
    return new RetryableKubeError(`${operation}: timed out`, 0, 'Timeout', undefined, { cause: e });
  }
  if (err?.name === 'FetchError' || (err?.code && NETWORK_CODES.has(err.code))) {
    return new RetryableKubeError(
      `${operation}: ${err.message ?? 'network error'}`,
      0,
      err.code ?? 'NetworkError',
      undefined,
      { cause: e },
    );
  }
  return new KubeApiError(`${operation}: ${err?.message ?? String(e)}`, 0, undefined, { cause: e });
}
