/**
 * The webhook function behind a plain node HTTP server on 127.0.0.1, as API Gateway (HTTP API,
 * payload format 2.0) would invoke it: each request becomes an APIGatewayProxyEventV2-shaped
 * event (lower-cased headers, repeated headers joined with commas, rawPath/rawQueryString, the
 * raw body as text, or base64 with isBase64Encoded for non-text content types) and the result
 * becomes the HTTP response. `GET /local/status` answers the local stack's status as JSON.
 */

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { WebhookEvent, WebhookResult } from '../../functions/webhook/app.js';

/** API Gateway's own payload limit: anything larger never reaches the function. */
const GATEWAY_MAX_BYTES = 10 * 1024 * 1024;

const TEXT_TYPES = /^(text\/|application\/(json|x-www-form-urlencoded|xml|[a-z0-9.+-]*\+json))/i;

export function toWebhookEvent(req: http.IncomingMessage, body: Buffer, now = Date.now()): APIGatewayProxyEventV2 {
  const url = new URL(req.url ?? '/', 'http://local');
  const headers: Record<string, string> = {};
  // Repeated headers are joined with commas, as API Gateway does.
  for (const [name, values] of Object.entries(req.headersDistinct)) if (values) headers[name] = values.join(',');
  // API Gateway v2 moves Cookie headers to `cookies`.
  const cookies = (headers.cookie ?? '')
    .split(';')
    .map((c) => c.trim())
    .filter(Boolean);
  delete headers.cookie;
  const type = headers['content-type'] ?? '';
  const text = body.length === 0 || TEXT_TYPES.test(type);
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(body.length > 0 ? { body: text ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: !text,
    requestContext: {
      http: {
        method: (req.method ?? 'GET').toUpperCase(),
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      accountId: 'local',
      apiId: 'local',
      domainName: req.headers.host ?? '127.0.0.1',
      domainPrefix: 'local',
      requestId: randomUUID(),
      routeKey: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now,
      stage: '$default',
    },
  };
}

export interface HttpEndpoint {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHttpEndpoint(options: {
  readonly port: number;
  readonly handler: (event: WebhookEvent) => Promise<WebhookResult>;
  readonly status: () => unknown;
}): Promise<HttpEndpoint> {
  const server = http.createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > GATEWAY_MAX_BYTES) tooLarge = true;
        else chunks.push(chunk as Buffer);
      }
      if (tooLarge) {
        res.writeHead(413, { 'content-type': 'application/json' }).end('{"message":"Request Entity Too Large"}');
        return;
      }
      const path = new URL(req.url ?? '/', 'http://local').pathname;
      if (req.method === 'GET' && path === '/local/status') {
        res
          .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(JSON.stringify(options.status()));
        return;
      }
      const result = await options.handler(toWebhookEvent(req, Buffer.concat(chunks)));
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
      const body = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body;
      res.writeHead(result.statusCode, headers).end(body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `local endpoint: ${error instanceof Error ? error.message : String(error)}` }));
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
