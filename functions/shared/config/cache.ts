/** The cache function's configuration. */
import { type LogLevel, logLevel } from './common.js';
import { type Env, int, optional, Problems, required, source, url } from './read.js';
import { CACHE_VARIABLES } from './variables/cache.js';
import { COMMON_VARIABLES } from './variables/common.js';

export interface CacheConfig {
  readonly logLevel: LogLevel;
  readonly bucket: string;
  readonly table: string;
  /** Undefined: the cache is off (404). */
  readonly tokenIssuer?: string;
  readonly jwksUrl?: string;
  readonly tokenAudience: string;
  readonly maxEntryBytes: number;
  readonly scopeMaxBytes: number;
  readonly retentionDays: number;
  readonly partBytes: number;
}

/** Reads and checks every cache variable; all problems are thrown as one ConfigError. */
export function loadCacheConfig(vars: Env = process.env): CacheConfig {
  const env = source(vars, [...COMMON_VARIABLES, ...CACHE_VARIABLES]);
  const p = new Problems();
  const scopeMaxBytes = p.take(() => int(env, 'CACHE_SCOPE_MAX_BYTES'), Number.NaN);
  const jwksUrl =
    optional(env, 'CACHE_JWKS_URL') === undefined ? undefined : p.take(() => url(env, 'CACHE_JWKS_URL'), '');
  const level = p.take(() => logLevel(env), 'INFO');
  const bucket = p.take(() => required(env, 'CACHE_BUCKET'), '');
  const table = p.take(() => required(env, 'CACHE_TABLE'), '');
  const tokenIssuer =
    optional(env, 'CACHE_TOKEN_ISSUER') === undefined ? undefined : p.take(() => url(env, 'CACHE_TOKEN_ISSUER'), '');
  const config: CacheConfig = {
    logLevel: level,
    bucket,
    table,
    ...(tokenIssuer === undefined ? {} : { tokenIssuer }),
    ...(jwksUrl === undefined ? {} : { jwksUrl }),
    tokenAudience: p.take(() => required(env, 'CACHE_TOKEN_AUDIENCE'), ''),
    maxEntryBytes: p.take(
      () => int(env, 'CACHE_MAX_ENTRY_BYTES', { CACHE_SCOPE_MAX_BYTES: scopeMaxBytes }),
      Number.NaN,
    ),
    scopeMaxBytes,
    retentionDays: p.take(() => int(env, 'CACHE_RETENTION_DAYS'), Number.NaN),
    partBytes: p.take(() => int(env, 'CACHE_PART_BYTES'), Number.NaN),
  };
  p.done();
  return config;
}
