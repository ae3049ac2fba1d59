/**
 * The cache API (HTTP API payload 2.0, routes under /cache/), independent of its wiring
 * (handler.ts wires S3, DynamoDB and the token verifier at cold start; tests wire their own).
 * Every request carries `authorization: Bearer <projected ServiceAccount token>`; the token's
 * ServiceAccount is the scope of every key. Bodies are JSON; answers are JSON, or `name value`
 * lines with `accept: text/plain` (what the shell client ci-cache reads, no JSON parser needed).
 *
 *   POST /cache/save           {key, size}  -> 200 upload (id, object, part size, part URLs)
 *                                            | 409 exists | 413 too large | 400 bad key/size
 *   POST /cache/save/complete  {key, size, upload, object, parts: [{partNumber, etag}]}
 *                                            -> 201 saved | 409 exists (another save won) | 400 | 413
 *   POST /cache/save/abort     {key, upload, object} -> 204
 *   POST /cache/restore        {key, restoreKeys?: [prefix...]} -> 200 hit (key, size, url) | 404 miss
 *   401 bad token | 404 no route, or the cache is off (no CACHE_TOKEN_ISSUER) | 405 not POST | 503 S3/DynamoDB/JWKS unavailable (retry)
 *
 * A save is visible only once its multipart upload is complete AND its entry is committed
 * (conditionally: the first commit of a key wins); the object of a losing or failed save is
 * deleted, and anything a crash leaves is invisible and removed by the bucket's lifecycle rule
 * (incomplete uploads, after a day) or the daily sweep (orphan objects).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { CacheStore } from '../adapters/dynamodb/cache-store.js';
import { TokenRejected, type TokenVerifier } from '../adapters/oidc/token-verifier.js';
import type { CacheBucket } from '../adapters/s3/cache-bucket.js';
import {
  type CacheEntry,
  CacheInputError,
  keyProblem,
  objectPrefix,
  ownsObject,
  partListProblem,
  planEviction,
  planParts,
  planSweep,
  type Scope,
  type StoredObject,
  scopeId,
  selectRestore,
  type UploadedPart,
} from '../core/cache/model.js';
import type { CacheConfig } from '../shared/config.js';
import { describeError } from '../shared/errors.js';

export interface CacheHttpEvent {
  readonly rawPath: string;
  readonly headers?: APIGatewayProxyEventV2['headers'];
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly requestContext: { readonly http: { readonly method: string }; readonly requestId?: string };
}
export type CacheResult = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

export interface CacheDeps {
  readonly config: Pick<CacheConfig, 'maxEntryBytes' | 'scopeMaxBytes' | 'retentionDays' | 'partBytes'>;
  readonly bucket: CacheBucket;
  readonly store: CacheStore;
  /** Undefined when no token issuer is configured: the cache is off and answers 404. */
  readonly verify?: TokenVerifier;
  readonly logger?: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  readonly now?: () => number;
  /** Object names (default: random UUIDs). */
  readonly newId?: () => string;
}

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_RESTORE_KEYS = 16;
/** A completed object without an entry is an orphan once this old (a save commits within seconds). */
export const ORPHAN_GRACE_MS = 6 * 3_600_000;
/** The table's TTL removes an item this long after it expired, if the sweep has not already. */
const TTL_MARGIN_SECONDS = 86_400;

type Fields = Record<string, string | number | boolean | readonly string[]>;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly fields: Fields,
  ) {
    super(String(fields.message ?? fields.status));
  }
}

function render(statusCode: number, fields: Fields, text: boolean): CacheResult {
  const headers = { 'cache-control': 'no-store' };
  if (!text) {
    return { statusCode, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(fields) };
  }
  const lines: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (name === 'parts' && Array.isArray(value)) {
      for (const [i, url] of value.entries()) lines.push(`part ${i + 1} ${url}`);
    } else lines.push(`${name} ${String(value).replace(/[\r\n]+/g, ' ')}`);
  }
  return {
    statusCode,
    headers: { ...headers, 'content-type': 'text/plain; charset=utf-8' },
    body: `${lines.join('\n')}\n`,
  };
}

function parseBody(event: CacheHttpEvent): Record<string, unknown> {
  const raw = event.body ?? '';
  if (raw.length > MAX_BODY_BYTES * 2) throw new HttpError(413, { status: 'error', message: 'body too large' });
  const text = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new HttpError(400, { status: 'error', message: 'the body must be a JSON object' });
}

function key(body: Record<string, unknown>): string {
  const problem = keyProblem(body.key);
  if (problem !== undefined) throw new HttpError(400, { status: 'error', message: problem });
  return body.key as string;
}

function header(event: CacheHttpEvent, name: string): string | undefined {
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === name && v !== undefined) return v;
  return undefined;
}

export function createCacheHandler(deps: CacheDeps): {
  http(event: CacheHttpEvent): Promise<CacheResult>;
  sweep(): Promise<{ expired: number; orphans: number }>;
} {
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? randomUUID;
  const log = deps.logger;
  const { config, bucket, store } = deps;
  const expiresAt = (at: number) => Math.floor(at / 1000) + config.retentionDays * 86_400 + TTL_MARGIN_SECONDS;

  function size(body: Record<string, unknown>): number {
    const value = body.size;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new HttpError(400, { status: 'error', message: 'size must be a non-negative integer (bytes)' });
    }
    if (value > config.maxEntryBytes) {
      throw new HttpError(413, {
        status: 'too-large',
        message: `an entry may hold at most ${config.maxEntryBytes} bytes (CACHE_MAX_ENTRY_BYTES), got ${value}`,
      });
    }
    return value;
  }

  /** Deletes entries (item first, so nothing points at a missing object), then their objects. */
  async function evict(entries: readonly CacheEntry[], reason: string): Promise<void> {
    for (const entry of entries) {
      if (!(await store.remove(entry))) continue;
      await bucket.delete(entry.objectKey);
      log?.info('evicted', { scope: entry.scope, key: entry.key, size: entry.size, reason });
    }
  }

  async function startSave(scope: Scope, body: Record<string, unknown>): Promise<[number, Fields]> {
    const k = key(body);
    const bytes = size(body);
    const plan = planParts(bytes, config.partBytes);
    if (await store.get(scopeId(scope), k)) return [409, { status: 'exists', key: k }];
    const object = `${objectPrefix(scope)}${newId()}`;
    const upload = await bucket.createUpload(object);
    const parts = await bucket.presignParts(object, upload, plan.parts);
    log?.info('save started', { scope: scopeId(scope), key: k, size: bytes, parts: plan.parts });
    return [200, { status: 'upload', key: k, upload, object, partBytes: plan.partBytes, parts }];
  }

  function uploadRef(scope: Scope, body: Record<string, unknown>): { upload: string; object: string } {
    const { upload, object } = body;
    if (typeof upload !== 'string' || upload === '' || upload.length > 1024 || !ownsObject(scope, object)) {
      throw new HttpError(400, { status: 'error', message: 'upload and object must be those the save answered' });
    }
    return { upload, object };
  }

  async function completeSave(scope: Scope, body: Record<string, unknown>): Promise<[number, Fields]> {
    const k = key(body);
    const bytes = size(body);
    const { upload, object } = uploadRef(scope, body);
    const plan = planParts(bytes, config.partBytes);
    const problem = partListProblem(body.parts, plan);
    if (problem !== undefined) throw new HttpError(400, { status: 'error', message: problem });
    const id = scopeId(scope);
    const saved: [number, Fields] = [201, { status: 'saved', key: k, size: bytes }];
    const existing = await store.get(id, k);
    if (existing) {
      if (existing.objectKey === object) return saved; // a retry of a completion that committed
      await bucket.abort(object, upload).catch(() => undefined);
      return [409, { status: 'exists', key: k }];
    }
    try {
      await bucket.complete(object, upload, body.parts as UploadedPart[]);
    } catch (error) {
      // A retried completion whose first attempt completed the upload (and then crashed or timed
      // out) finds no upload: go on with the object if it is there.
      if ((error as Error | undefined)?.name !== 'NoSuchUpload' || (await bucket.size(object)) === undefined) {
        throw error;
      }
    }
    const stored = await bucket.size(object);
    if (stored !== bytes) {
      await bucket.delete(object);
      throw new HttpError(400, { status: 'error', message: `the upload holds ${stored} bytes, ${bytes} declared` });
    }
    const at = now();
    const entry: CacheEntry = { scope: id, key: k, objectKey: object, size: bytes, createdAt: at, lastUsedAt: at };
    if (!(await store.commit(entry, expiresAt(at)))) {
      // Another completion of this same upload (a client retry) may have committed it: never
      // delete the object an entry points to.
      if ((await store.get(id, k))?.objectKey === object) return saved;
      await bucket.delete(object);
      log?.info('save lost', { scope: id, key: k });
      return [409, { status: 'exists', key: k }];
    }
    log?.info('saved', { scope: id, key: k, size: bytes });
    const victims = planEviction(await store.query(id, ''), {
      now: at,
      retentionDays: config.retentionDays,
      scopeMaxBytes: config.scopeMaxBytes,
      keep: k,
    });
    await evict(victims, 'scope full or expired');
    return saved;
  }

  async function abortSave(scope: Scope, body: Record<string, unknown>): Promise<[number, Fields]> {
    key(body);
    const { upload, object } = uploadRef(scope, body);
    await bucket.abort(object, upload);
    return [204, {}];
  }

  async function restore(scope: Scope, body: Record<string, unknown>): Promise<[number, Fields]> {
    const k = key(body);
    const prefixes = body.restoreKeys ?? [];
    if (!Array.isArray(prefixes) || prefixes.length > MAX_RESTORE_KEYS) {
      throw new HttpError(400, {
        status: 'error',
        message: `restoreKeys must be a list of at most ${MAX_RESTORE_KEYS}`,
      });
    }
    for (const p of prefixes) {
      const problem = keyProblem(p, { prefix: true });
      if (problem !== undefined) throw new HttpError(400, { status: 'error', message: problem });
    }
    const id = scopeId(scope);
    const at = now();
    const candidates: CacheEntry[] = [];
    const exact = await store.get(id, k);
    if (exact) candidates.push(exact);
    let found = selectRestore(candidates, k, [], at, config.retentionDays);
    for (const prefix of prefixes as string[]) {
      if (found) break;
      found = selectRestore(await store.query(id, prefix), k, [prefix], at, config.retentionDays);
    }
    if (!found) {
      log?.info('restore miss', { scope: id, key: k });
      return [404, { status: 'miss', key: k }];
    }
    const { entry } = found;
    const url = await bucket.presignGet(entry.objectKey);
    await store.touch(entry, at, expiresAt(at));
    log?.info('restore hit', { scope: id, key: k, matched: entry.key, exact: found.exact, size: entry.size });
    return [200, { status: 'hit', key: entry.key, exact: found.exact, size: entry.size, url }];
  }

  const ROUTES: Record<string, (scope: Scope, body: Record<string, unknown>) => Promise<[number, Fields]>> = {
    save: startSave,
    'save/complete': completeSave,
    'save/abort': abortSave,
    restore,
  };

  return {
    async http(event) {
      const text = (header(event, 'accept') ?? '').includes('text/plain');
      const method = (event.requestContext?.http?.method ?? '').toUpperCase();
      const route = /^\/cache\/(.+?)\/?$/.exec(event.rawPath ?? '')?.[1] ?? '';
      const action = Object.hasOwn(ROUTES, route) ? ROUTES[route] : undefined;
      if (action === undefined) return render(404, { status: 'error', message: 'Not found' }, text);
      const verify = deps.verify;
      if (verify === undefined) {
        return render(404, { status: 'off', message: 'The build cache is off (no CACHE_TOKEN_ISSUER)' }, text);
      }
      if (method !== 'POST') {
        const result = render(405, { status: 'error', message: 'Method not allowed' }, text);
        return { ...result, headers: { ...result.headers, allow: 'POST' } };
      }
      try {
        let scope: Scope;
        try {
          const authorization = header(event, 'authorization') ?? '';
          scope = await verify(/^Bearer\s+(\S+)$/i.exec(authorization)?.[1]);
        } catch (error) {
          if (!(error instanceof TokenRejected)) throw error;
          log?.warn('rejected', { status: 401, route, reason: error.message });
          return render(401, { status: 'unauthorized', message: 'Unauthorized' }, text);
        }
        const [status, fields] = await action(scope, parseBody(event));
        return status === 204 ? { statusCode: 204, body: '' } : render(status, fields, text);
      } catch (error) {
        if (error instanceof HttpError) {
          log?.warn('rejected', { status: error.status, route, reason: error.message });
          return render(error.status, error.fields, text);
        }
        if (error instanceof CacheInputError) {
          log?.warn('rejected', { status: 400, route, reason: error.message });
          return render(400, { status: 'error', message: error.message }, text);
        }
        log?.error('unavailable', { status: 503, route, error: describeError(error).slice(0, 500) });
        const result = render(503, { status: 'unavailable', message: 'Temporarily unavailable, retry later' }, text);
        return { ...result, headers: { ...result.headers, 'retry-after': '2' } };
      }
    },

    /** Daily: expired entries and orphan objects (crashed or lost saves) go. */
    async sweep() {
      const entries: CacheEntry[] = [];
      for await (const e of store.scan()) entries.push(e);
      const objects: StoredObject[] = [];
      for await (const o of bucket.list()) objects.push(o);
      const plan = planSweep(entries, objects, {
        now: now(),
        retentionDays: config.retentionDays,
        orphanGraceMs: ORPHAN_GRACE_MS,
      });
      await evict(plan.expired, 'retention');
      for (const o of plan.orphans) await bucket.delete(o);
      log?.info('swept', { expired: plan.expired.length, orphans: plan.orphans.length, entries: entries.length });
      return { expired: plan.expired.length, orphans: plan.orphans.length };
    },
  };
}
