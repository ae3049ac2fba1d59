/**
 * Lambda entry point of the build cache: HTTP API routes under /cache/ (see app.ts), and a daily
 * schedule that sweeps expired entries and orphan objects. Configuration is read once, at cold
 * start: a bad environment variable fails the import with a ConfigError naming it.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { dynamoCacheStore } from '../adapters/dynamodb/cache-store.js';
import { createTokenVerifier } from '../adapters/oidc/token-verifier.js';
import { s3CacheBucket } from '../adapters/s3/cache-bucket.js';
import { loadCacheConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { type CacheHttpEvent, type CacheResult, createCacheHandler } from './app.js';

const config = loadCacheConfig();
const logger = createLogger('cache', config.logLevel);

const cache = createCacheHandler({
  config,
  bucket: s3CacheBucket(config.bucket),
  store: dynamoCacheStore(config.table),
  // Without an issuer the cache is off: every route answers 404.
  ...(config.tokenIssuer === undefined
    ? {}
    : {
        verify: createTokenVerifier({
          issuer: config.tokenIssuer,
          audience: config.tokenAudience,
          ...(config.jwksUrl ? { jwksUrl: config.jwksUrl } : {}),
        }),
      }),
  logger,
});

/** The EventBridge schedule's event (the sweep). */
interface ScheduledEvent {
  readonly source: 'aws.events';
  readonly 'detail-type'?: string;
}

export type CacheEvent = CacheHttpEvent | ScheduledEvent;

async function route(event: CacheEvent): Promise<CacheResult | { expired: number; orphans: number }> {
  if ('source' in event && event.source === 'aws.events') return cache.sweep();
  return cache.http(event as CacheHttpEvent);
}

export const handler = middy<CacheEvent, CacheResult | { expired: number; orphans: number }>(route).use(
  injectLambdaContext(logger),
);
