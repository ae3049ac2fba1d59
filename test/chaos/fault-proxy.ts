/**
 * An HTTP proxy on 127.0.0.1 in front of DynamoDB Local that injects the errors DynamoDB
 * answers under stress: HTTP 500 InternalServerError and HTTP 400
 * ProvisionedThroughputExceededException (the JSON protocol's error bodies), each with a seeded
 * probability; everything else is forwarded unchanged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mulberry32 } from './model.js';

export interface FaultProxy {
  readonly endpoint: string;
  /** Probability that a request gets an injected error (0 stops the faults). */
  rate: number;
  readonly injected: { throttled: number; internal: number; forwarded: number };
  stop(): Promise<void>;
}

const THROTTLED = JSON.stringify({
  __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
  message:
    'The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.',
});
const INTERNAL = JSON.stringify({
  __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
  message: 'Internal server error',
});

export async function startFaultProxy(target: string, seed: number): Promise<FaultProxy> {
  const random = mulberry32(seed);
  const url = new URL(target);
  const injected = { throttled: 0, internal: 0, forwarded: 0 };
  const proxy: { rate: number } = { rate: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (random() < proxy.rate) {
        const throttle = random() < 0.5;
        if (throttle) injected.throttled++;
        else injected.internal++;
        const body = throttle ? THROTTLED : INTERNAL;
        res.writeHead(throttle ? 400 : 500, {
          'content-type': 'application/x-amz-json-1.0',
          'content-length': Buffer.byteLength(body),
          'x-amzn-requestid': `chaos-${injected.throttled + injected.internal}`,
        });
        res.end(body);
        return;
      }
      injected.forwarded++;
      const upstream = http.request(
        {
          host: url.hostname,
          port: url.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    injected,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
