/**
 * The webhook's request handling, independent of how it is wired (handler.ts wires it with the
 * configuration, the SQS events queue and the secret store at cold start; tests wire it with
 * their own). Answers (see the README):
 *   202 accepted (one SQS message) | 202 ignored | 200 Buildkite ping | 400 malformed |
 *   401 not authentic | 404 unknown or disabled provider | 405 not POST | 413 too large |
 *   503 the queue (or SSM) is unavailable, so the provider retries.
 * Every answer but success is an error type of ./errors.ts, mapped in one place (errorResponse).
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import {
  boundDeliveryId,
  boundedText,
  InvalidJobEventError,
  invalidJobEvent,
  PROVIDERS,
  type Provider,
  type QueuedJobEvent,
} from '../core/job-event.js';
import { descriptorOf } from '../core/providers/registry.js';
import type { RawRequest } from '../core/providers/types.js';
import type { WebhookConfig } from '../shared/config.js';
import {
  BadRequestError,
  errorResponse,
  MAX_ANSWER_TEXT,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  UnavailableError,
} from './errors.js';

/** The parts of an API Gateway HTTP API v2 / function URL event the webhook reads. */
export interface WebhookEvent {
  readonly rawPath: string;
  readonly headers?: APIGatewayProxyEventV2['headers'];
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly requestContext: { readonly http: { readonly method: string }; readonly requestId?: string };
}
export type WebhookResult = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

export interface WebhookSecrets {
  enabled(provider: Provider): boolean;
  refreshable(provider: Provider): boolean;
  get(provider: Provider): Promise<string>;
  refresh(provider: Provider): Promise<string | undefined>;
}

export interface WebhookDeps {
  readonly config: Pick<WebhookConfig, 'queues' | 'maxBodyBytes' | 'buildkiteReplayWindowSeconds'> &
    Partial<Pick<WebhookConfig, 'routing' | 'scope'>>;
  readonly queue: { sendEvent(event: QueuedJobEvent): Promise<unknown> };
  readonly secrets: WebhookSecrets;
  readonly logger?: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  readonly now?: () => number;
}

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;
const ROUTE = /\/webhooks\/([^/]+)\/?$/;

function reply(statusCode: number, body: Record<string, unknown>, headers: Record<string, string> = {}): WebhookResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** Lower-cased header names (API Gateway already lower-cases them; function URLs and tests may not). */
export function normaliseHeaders(
  headers: Readonly<Record<string, string | undefined>> | undefined,
): Record<string, string> {
  // No prototype: a header named `constructor` or `__proto__` is a header like any other.
  const out: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (typeof value !== 'string') continue;
    const key = name.toLowerCase();
    out[key] = out[key] === undefined ? value : `${out[key]},${value}`;
  }
  return out;
}

/** Decoded body bytes, or 'too-large' (checked before decoding where the size is knowable). */
function bodyBytes(event: WebhookEvent, max: number): Buffer | 'too-large' {
  const body = event.body ?? '';
  if (event.isBase64Encoded) {
    // Decoded size is at most 3/4 of the encoded length: refuse early, before allocating.
    if (Math.floor((body.length * 3) / 4) - 2 > max) return 'too-large';
    const bytes = Buffer.from(body, 'base64');
    return bytes.length > max ? 'too-large' : bytes;
  }
  if (body.length > max) return 'too-large'; // each char is at least one byte
  const bytes = Buffer.from(body, 'utf8');
  return bytes.length > max ? 'too-large' : bytes;
}

export function createWebhookHandler(deps: WebhookDeps): (event: WebhookEvent) => Promise<WebhookResult> {
  const now = deps.now ?? Date.now;
  const log = deps.logger;

  async function authentic(provider: Provider, request: RawRequest): Promise<boolean> {
    const module = descriptorOf(provider).webhook;
    const options = { now: now(), replayWindowSeconds: deps.config.buildkiteReplayWindowSeconds };
    const secret = await deps.secrets.get(provider);
    if (await module.verify(request, module.secretsFrom(secret), options)) return true;
    if (!deps.secrets.refreshable(provider)) return false;
    // Perhaps the secret was rotated: fetch it again (rate-limited inside the store) and retry once.
    const fresh = await deps.secrets.refresh(provider);
    return fresh !== undefined && module.verify(request, module.secretsFrom(fresh), options);
  }

  /** The successful answers; every other one is thrown (./errors.ts) and mapped in webhook(). */
  async function handle(event: WebhookEvent, context: Record<string, unknown>): Promise<WebhookResult> {
    const method = (event.requestContext?.http?.method ?? '').toUpperCase();
    const path = event.rawPath ?? '';
    Object.assign(context, { method: boundedText(method, 20), path: boundedText(path, 200) });
    const name = ROUTE.exec(path)?.[1] ?? '';
    const provider = PROVIDERS.find((p) => p === name);
    if (provider === undefined || !deps.secrets.enabled(provider)) throw new NotFoundError();
    Object.assign(context, { provider, path: undefined });
    if (method !== 'POST') throw new MethodNotAllowedError();
    Object.assign(context, { method: undefined });
    const body = bodyBytes(event, deps.config.maxBodyBytes);
    if (body === 'too-large') {
      context.maxBodyBytes = deps.config.maxBodyBytes;
      throw new PayloadTooLargeError(deps.config.maxBodyBytes);
    }
    const request: RawRequest = { headers: normaliseHeaders(event.headers), body };
    const idHeader = descriptorOf(provider).deliveryIdHeader;
    const deliveryId = idHeader === undefined ? undefined : request.headers[idHeader];
    Object.assign(context, { deliveryId: boundDeliveryId(deliveryId), bytes: body.length });

    let ok: boolean;
    try {
      ok = await authentic(provider, request);
    } catch (error) {
      throw new UnavailableError('secret', error);
    }
    if (!ok) throw new UnauthorizedError();

    const result = descriptorOf(provider).webhook.parse(request, {
      queues: deps.config.queues,
      ...(deps.config.routing ? { routing: deps.config.routing } : {}),
      ...(deps.config.scope ? { scope: deps.config.scope } : {}),
      receivedAt: new Date(now()),
    });
    if (result.kind === 'pong') {
      log?.info('ping', context);
      return reply(200, { status: 'pong' });
    }
    if (result.kind === 'ignored') {
      const reason = boundedText(result.reason, MAX_ANSWER_TEXT);
      log?.info('ignored', { ...context, status: 202, reason });
      return reply(202, { status: 'ignored', reason });
    }

    const { event: jobEvent } = result;
    // The last check: whatever a provider module made of the request, nothing the scaler could
    // not apply is ever recorded.
    const invalid = invalidJobEvent(jobEvent);
    if (invalid !== undefined) throw new BadRequestError(`the request makes no valid job event: ${invalid}`);
    Object.assign(context, { eventId: jobEvent.id, jobId: jobEvent.jobId, queue: jobEvent.queue, kind: jobEvent.kind });
    try {
      await deps.queue.sendEvent(jobEvent);
    } catch (error) {
      if (error instanceof InvalidJobEventError) throw error; // a bug, not an outage: 500
      throw new UnavailableError('queue', error);
    }
    log?.info('accepted', { ...context, status: 202, trace: jobEvent.trace });
    return reply(202, { status: 'accepted', eventId: jobEvent.id, kind: jobEvent.kind, queue: jobEvent.queue });
  }

  return async function webhook(event: WebhookEvent): Promise<WebhookResult> {
    const context: Record<string, unknown> = {};
    try {
      return await handle(event, context);
    } catch (error) {
      const answer = errorResponse(error);
      log?.[answer.log.level](answer.log.message, { ...context, status: answer.status, ...answer.log.fields });
      return reply(answer.status, answer.body, answer.headers);
    }
  };
}
