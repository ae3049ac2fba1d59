/**
 * The build cache run locally: the cache API (functions/cache/app.ts with the real S3 and
 * DynamoDB adapters) behind a plain HTTP server, S3 from fauxqs (path-style, real multipart and
 * presigned URLs), the entries table from infra/aws/cache.yml in DynamoDB Local, and a local
 * ServiceAccount token issuer. Used by `npm start`, the tests and the benchmark.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CreateBucketCommand, PutBucketLifecycleConfigurationCommand, S3Client } from '@aws-sdk/client-s3';
import { parse } from 'yaml';
import { type CacheStore, dynamoCacheStore } from '../../functions/adapters/dynamodb/cache-store.js';
import { createTokenVerifier } from '../../functions/adapters/oidc/token-verifier.js';
import { type CacheBucket, s3CacheBucket } from '../../functions/adapters/s3/cache-bucket.js';
import {
  type CacheDeps,
  type CacheHttpEvent,
  type CacheResult,
  createCacheHandler,
} from '../../functions/cache/app.js';
import type { CacheConfig } from '../../functions/shared/config.js';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';
import { localDynamoDbClient } from './dynamodb-local.js';
import { type HttpEndpoint, startHttpEndpoint } from './http-endpoint.js';
import { createTableFromDefinition, tableDefinitionFromCloudFormation } from './table-definition.js';
import { startTokenIssuer, type TokenIssuer } from './token-issuer.js';

export const CACHE_YAML = path.join(PROJECT_ROOT, 'infra/aws/cache.yml');

/** A path-style S3 client for an emulator endpoint (fauxqs), dummy credentials. */
export function localS3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 2,
  });
}

/** Creates the bucket with the lifecycle rules of infra/aws/cache.yml. */
export async function createCacheBucket(client: S3Client, bucket: string): Promise<void> {
  const doc = parse(await readFile(CACHE_YAML, 'utf8')) as {
    Resources: { CacheBucket: { Properties: { LifecycleConfiguration: { Rules: Record<string, unknown>[] } } } };
  };
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const rules = doc.Resources.CacheBucket.Properties.LifecycleConfiguration.Rules.map((r) => ({
    ID: r.Id as string,
    Status: r.Status as 'Enabled',
    Filter: { Prefix: (r.Prefix as string | undefined) ?? '' },
    AbortIncompleteMultipartUpload: r.AbortIncompleteMultipartUpload as { DaysAfterInitiation: number },
  }));
  await client.send(
    new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: rules } }),
  );
}

/** Creates the entries table of infra/aws/cache.yml in DynamoDB Local. */
export async function createCacheTable(dynamoEndpoint: string, table: string): Promise<void> {
  const definition = tableDefinitionFromCloudFormation(await readFile(CACHE_YAML, 'utf8'), table, 'CacheTable');
  const client = localDynamoDbClient(dynamoEndpoint);
  try {
    await createTableFromDefinition(client, definition);
  } finally {
    client.destroy();
  }
}

export interface CacheLocalOptions {
  /** fauxqs endpoint (http://127.0.0.1:<port>), which serves S3. */
  readonly s3Endpoint: string;
  /** DynamoDB Local endpoint; AWS_ENDPOINT_URL_DYNAMODB must point at it too (the store's client). */
  readonly dynamoEndpoint: string;
  readonly bucket?: string;
  readonly table?: string;
  /** Port of the cache API on 127.0.0.1 (default: a free one). */
  readonly port?: number;
  readonly config?: Partial<CacheConfig>;
  /** Wraps the adapters (the tests inject crashes). */
  readonly wrap?: (deps: { bucket: CacheBucket; store: CacheStore }) => { bucket: CacheBucket; store: CacheStore };
  readonly now?: () => number;
  readonly logger?: CacheDeps['logger'];
  /** Called with the path of every API request (the benchmark counts them). */
  readonly onRequest?: (path: string) => void;
}

export interface LocalCache {
  readonly issuer: TokenIssuer;
  readonly bucket: string;
  readonly table: string;
  readonly s3: S3Client;
  readonly config: CacheConfig;
  /** The cache API's request handler (routes /cache/...). */
  http(event: CacheHttpEvent): Promise<CacheResult>;
  sweep(): Promise<{ expired: number; orphans: number }>;
  stop(): Promise<void>;
}

export interface CacheLocal extends LocalCache {
  /** The value of CI_CACHE_URL. */
  readonly url: string;
}

let counter = 0;

/** The cache API with its bucket, table and token issuer, without an HTTP endpoint of its own. */
export async function createLocalCache(options: CacheLocalOptions): Promise<LocalCache> {
  counter += 1;
  const bucket = options.bucket ?? `ci-cache-local-${process.pid}-${counter}`;
  const table = options.table ?? `ci-cache-local-${process.pid}-${counter}`;
  const s3 = localS3Client(options.s3Endpoint);
  await createCacheBucket(s3, bucket);
  await createCacheTable(options.dynamoEndpoint, table);
  const issuer = await startTokenIssuer();
  const config: CacheConfig = {
    logLevel: 'WARN',
    bucket,
    table,
    tokenIssuer: issuer.url,
    tokenAudience: 'ci-cache',
    maxEntryBytes: 10 * 1024 ** 3,
    scopeMaxBytes: 100 * 1024 ** 3,
    retentionDays: 7,
    partBytes: 8 * 1024 * 1024,
    ...options.config,
  };
  const adapters = { bucket: s3CacheBucket(bucket, () => s3), store: dynamoCacheStore(table) };
  const { bucket: cacheBucket, store } = options.wrap ? options.wrap(adapters) : adapters;
  const cache = createCacheHandler({
    config,
    bucket: cacheBucket,
    store,
    verify: createTokenVerifier({
      issuer: config.tokenIssuer ?? issuer.url,
      audience: config.tokenAudience,
      ...(config.jwksUrl ? { jwksUrl: config.jwksUrl } : {}),
    }),
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return {
    issuer,
    bucket,
    table,
    s3,
    config,
    http: (event) => {
      options.onRequest?.(event.rawPath);
      return cache.http(event);
    },
    sweep: () => cache.sweep(),
    async stop() {
      await issuer.close();
      s3.destroy();
    },
  };
}

/** The cache API on its own HTTP endpoint (tests, benchmark). */
export async function startCacheLocal(options: CacheLocalOptions): Promise<CacheLocal> {
  const cache = await createLocalCache(options);
  let endpoint: HttpEndpoint;
  try {
    endpoint = await startHttpEndpoint({
      port: options.port ?? 0,
      handler: cache.http,
      status: () => ({ bucket: cache.bucket, table: cache.table, issuer: cache.issuer.url }),
    });
  } catch (error) {
    await cache.stop();
    throw error;
  }
  return {
    ...cache,
    url: endpoint.url,
    async stop() {
      await endpoint.close();
      await cache.stop();
    },
  };
}
