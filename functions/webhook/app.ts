/**
 * The webhook's request handling, independent of how it is wired (handler.ts wires it with the
 * configuration, the SQS events queue and the secret store at cold start; tests wire it with
 * their own). Answers (see the README):
 *   202 accepted (one SQS message) | 202 ignored | 200 Buildkite ping | 400 malformed |
 *   401 not authentic | 404 unknown or disabled provider | 405 not POST | 413 too large |
 *   503 the queue (or SSM) is unavailable, so the provider retries.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { PROVIDERS, type Provider, type QueuedJobEvent } from '../core/job-event.js';
import { PROVIDER_MODULES } from '../core/providers/index.js';
import { BadRequestError, type ProviderResult, type RawRequest } from '../core/providers/types.js';
import type { WebhookConfig } from '../shared/config.js';

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
    Partial<Pick<WebhookConfig, 'routing'>>;
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
  const out: Record<string, string> = {};
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
    const module = PROVIDER_MODULES[provider];
    const options = { now: now(), replayWindowSeconds: deps.config.buildkiteReplayWindowSeconds };
    const secret = await deps.secrets.get(provider);
    if (await module.verify(request, module.secretsFrom(secret), options)) return true;
    if (!deps.secrets.refreshable(provider)) return false;
    // Perhaps the secret was rotated: fetch it again (rate-limited inside the store) and retry once.
    const fresh = await deps.secrets.refresh(provider);
    return fresh !== undefined && module.verify(request, module.secretsFrom(fresh), options);
  }

  return async function webhook(event: WebhookEvent): Promise<WebhookResult> {
    const method = (event.requestContext?.http?.method ?? '').toUpperCase();
    const path = event.rawPath ?? '';
    const match = ROUTE.exec(path);
    const name = match?.[1] ?? '';
    if (!(PROVIDERS as readonly string[]).includes(name) || !deps.secrets.enabled(name as Provider)) {
      log?.info('rejected', { status: 404, path: path.slice(0, 200), method });
      return reply(404, { message: 'Not found' });
    }
    const provider = name as Provider;
    if (method !== 'POST') {
      log?.info('rejected', { status: 405, provider, method });
      return reply(405, { message: 'Method not allowed' }, { allow: 'POST' });
    }
    const body = bodyBytes(event, deps.config.maxBodyBytes);
    if (body === 'too-large') {
      log?.warn('rejected', { status: 413, provider, maxBodyBytes: deps.config.maxBodyBytes });
      return reply(413, { message: `Body larger than ${deps.config.maxBodyBytes} bytes` });
    }
    const request: RawRequest = { headers: normaliseHeaders(event.headers), body };
    const deliveryId = request.headers['x-github-delivery'] ?? request.headers['x-gitlab-event-uuid'];
    const context = { provider, deliveryId: deliveryId?.slice(0, 128), bytes: body.length };

    try {
      let ok: boolean;
      try {
        ok = await authentic(provider, request);
      } catch (error) {
        log?.error('secret unavailable', { ...context, status: 503, error: errorText(error) });
        return reply(503, { message: 'Temporarily unavailable, retry later' }, { 'retry-after': '5' });
      }
      if (!ok) {
        log?.warn('rejected', { ...context, status: 401, reason: 'authentication failed' });
        return reply(401, { message: 'Unauthorized' });
      }

      let result: ProviderResult;
      try {
        result = PROVIDER_MODULES[provider].parse(request, {
          queues: deps.config.queues,
          ...(deps.config.routing ? { routing: deps.config.routing } : {}),
          receivedAt: new Date(now()),
        });
      } catch (error) {
        if (!(error instanceof BadRequestError)) throw error;
        log?.warn('rejected', { ...context, status: 400, reason: error.message });
        return reply(400, { message: error.message });
      }

      if (result.kind === 'pong') {
        log?.info('ping', context);
        return reply(200, { status: 'pong' });
      }
      if (result.kind === 'ignored') {
        log?.info('ignored', { ...context, status: 202, reason: result.reason });
        return reply(202, { status: 'ignored', reason: result.reason });
      }

      const { event: jobEvent } = result;
      const summary = {
        ...context,
        eventId: jobEvent.id,
        jobId: jobEvent.jobId,
        queue: jobEvent.queue,
        kind: jobEvent.kind,
      };
      try {
        await deps.queue.sendEvent(jobEvent);
      } catch (error) {
        log?.error('queue unavailable', { ...summary, status: 503, error: errorText(error) });
        return reply(503, { message: 'Could not record the event, retry later' }, { 'retry-after': '5' });
      }
      log?.info('accepted', { ...summary, status: 202, trace: jobEvent.trace });
      return reply(202, { status: 'accepted', eventId: jobEvent.id, kind: jobEvent.kind, queue: jobEvent.queue });
    } catch (error) {
      log?.error('unexpected error', { ...context, status: 500, error: errorText(error) });
      return reply(500, { message: 'Internal error' });
    }
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 500) : String(error).slice(0, 500);
}
