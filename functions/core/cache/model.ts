/**
 * The build cache's rules, without I/O: what a key may look like, who owns an entry, how a save is
 * cut into multipart parts, which entry a restore picks, and what eviction removes.
 *
 * An entry belongs to a scope, the Kubernetes ServiceAccount (namespace/name) whose projected
 * token the agent presented; one scope never sees another's entries. Keys are immutable: the first
 * completed save of a key wins. Restore tries the exact key, then each restore-key prefix in
 * order; among the entries matching the first prefix that matches anything, the newest wins.
 */

export const MAX_KEY_LENGTH = 512;
/** S3's limits on multipart uploads. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
export const MAX_PARTS = 10_000;

const KEY_CHARS = /^[A-Za-z0-9._+=:@/-]+$/;

export class CacheInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheInputError';
  }
}

/**
 * Why a key (or, with `prefix`, a restore-key prefix) is invalid, or undefined when it is fine.
 * Letters, digits and `. _ + = : @ - /`, at most 512 characters; `/` separates segments, and no
 * segment may be empty, `.` or `..` (no path tricks). A prefix may end with `/`.
 */
export function keyProblem(key: unknown, options: { prefix?: boolean } = {}): string | undefined {
  const what = options.prefix ? 'restore key' : 'key';
  if (typeof key !== 'string' || key.length === 0) return `${what} must be a non-empty string`;
  if (key.length > MAX_KEY_LENGTH) return `${what} is longer than ${MAX_KEY_LENGTH} characters`;
  if (!KEY_CHARS.test(key)) return `${what} may only contain letters, digits and . _ + = : @ - /`;
  const segments = key.split('/');
  if (options.prefix && segments.length > 1 && segments.at(-1) === '') segments.pop();
  for (const segment of segments) {
    if (segment === '') return `${what} may not start with /, end with / or contain //`;
    if (segment === '.' || segment === '..') return `${what} may not contain . or .. segments`;
  }
  return undefined;
}

export function validKey(key: unknown, options: { prefix?: boolean } = {}): string {
  const problem = keyProblem(key, options);
  if (problem !== undefined) throw new CacheInputError(problem);
  return key as string;
}

/** The owner of entries: the ServiceAccount of a verified projected token. */
export interface Scope {
  readonly namespace: string;
  readonly serviceAccount: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * The scope named by a projected ServiceAccount token's verified claims: `kubernetes.io`
 * .namespace and .serviceaccount.name, which must agree with `sub`
 * (system:serviceaccount:<namespace>:<name>). Undefined when the token is not a ServiceAccount's.
 */
export function scopeFromClaims(claims: Readonly<Record<string, unknown>>): Scope | undefined {
  const k8s = claims['kubernetes.io'];
  if (typeof k8s !== 'object' || k8s === null) return undefined;
  const namespace = (k8s as Record<string, unknown>).namespace;
  const sa = (k8s as Record<string, unknown>).serviceaccount;
  if (typeof namespace !== 'string' || typeof sa !== 'object' || sa === null) return undefined;
  const name = (sa as Record<string, unknown>).name;
  if (typeof name !== 'string') return undefined;
  if (!DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(name)) return undefined;
  if (claims.sub !== `system:serviceaccount:${namespace}:${name}`) return undefined;
  return { namespace, serviceAccount: name };
}

export function scopeId(scope: Scope): string {
  return `${scope.namespace}/${scope.serviceAccount}`;
}

/** Objects of a scope live under `<namespace>/<serviceAccount>/`; one object per save attempt. */
export function objectPrefix(scope: Scope): string {
  return `${scopeId(scope)}/`;
}

const CACHE_OBJECT = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/[0-9a-f-]{36}$/;

/** An object the cache API wrote (`<namespace>/<serviceaccount>/<uuid>`); others (GitLab's) are left alone. */
export function isCacheObject(objectKey: string): boolean {
  return CACHE_OBJECT.test(objectKey);
}

export function ownsObject(scope: Scope, objectKey: unknown): objectKey is string {
  return (
    typeof objectKey === 'string' &&
    objectKey.startsWith(objectPrefix(scope)) &&
    /^[0-9a-f-]{36}$/.test(objectKey.slice(objectPrefix(scope).length))
  );
}

export interface PartPlan {
  readonly partBytes: number;
  readonly parts: number;
}

/**
 * How an entry of `size` bytes is cut: parts of `preferredPartBytes` (at least S3's 5 MiB
 * minimum), larger when that would exceed 10,000 parts. An empty entry is one empty part.
 */
export function planParts(size: number, preferredPartBytes: number): PartPlan {
  let partBytes = Math.max(preferredPartBytes, MIN_PART_BYTES);
  const mib = 1024 * 1024;
  if (Math.ceil(size / partBytes) > MAX_PARTS) partBytes = Math.ceil(size / MAX_PARTS / mib) * mib;
  if (partBytes > MAX_PART_BYTES) throw new CacheInputError(`an entry of ${size} bytes is too large for S3`);
  return { partBytes, parts: Math.max(1, Math.ceil(size / partBytes)) };
}

export interface UploadedPart {
  readonly partNumber: number;
  readonly etag: string;
}

/**
 * Why a client's list of uploaded parts cannot complete the planned upload: it must name parts
 * 1..n of the plan, in order, each with the ETag S3 answered to its upload (S3 checks the ETags
 * and the 5 MiB minimum; the size of the completed object is checked against the declared one).
 */
export function partListProblem(parts: unknown, plan: PartPlan): string | undefined {
  if (!Array.isArray(parts)) return 'parts must be a list';
  if (parts.length !== plan.parts) return `expected ${plan.parts} part(s), got ${parts.length}`;
  for (const [i, part] of parts.entries()) {
    const p = part as Partial<UploadedPart> | null;
    if (p === null || typeof p !== 'object' || p.partNumber !== i + 1) return `part ${i + 1} is missing`;
    if (typeof p.etag !== 'string' || !/^"?[A-Za-z0-9+/=_-]{1,128}"?$/.test(p.etag)) {
      return `part ${i + 1} has no valid ETag`;
    }
  }
  return undefined;
}

/** A committed entry, as the metadata table holds it. */
export interface CacheEntry {
  readonly scope: string;
  readonly key: string;
  readonly objectKey: string;
  readonly size: number;
  /** Epoch milliseconds of the commit. */
  readonly createdAt: number;
  /** Epoch milliseconds of the commit or the last restore. */
  readonly lastUsedAt: number;
}

export function isExpired(entry: Pick<CacheEntry, 'lastUsedAt'>, now: number, retentionDays: number): boolean {
  return entry.lastUsedAt < now - retentionDays * 86_400_000;
}

/**
 * The entry a restore gets: the exact key if present, else for the first prefix (in the order
 * given) that matches any entry, the newest of them (latest createdAt; ties by key). Expired
 * entries are never returned.
 */
export function selectRestore(
  entries: readonly CacheEntry[],
  key: string,
  restoreKeys: readonly string[],
  now: number,
  retentionDays: number,
): { readonly entry: CacheEntry; readonly exact: boolean } | undefined {
  const live = entries.filter((e) => !isExpired(e, now, retentionDays));
  const exact = live.find((e) => e.key === key);
  if (exact) return { entry: exact, exact: true };
  for (const prefix of restoreKeys) {
    const matches = live.filter((e) => e.key.startsWith(prefix));
    if (matches.length === 0) continue;
    const newest = matches.reduce((a, b) =>
      b.createdAt > a.createdAt || (b.createdAt === a.createdAt && b.key > a.key) ? b : a,
    );
    return { entry: newest, exact: false };
  }
  return undefined;
}

/**
 * What to evict from one scope: every expired entry, then least recently used entries until the
 * scope fits in `scopeMaxBytes`. `keep` (the entry just saved) is never evicted.
 */
export function planEviction(
  entries: readonly CacheEntry[],
  options: { now: number; retentionDays: number; scopeMaxBytes: number; keep?: string },
): CacheEntry[] {
  const evict: CacheEntry[] = [];
  const remaining: CacheEntry[] = [];
  for (const e of entries) {
    if (e.key !== options.keep && isExpired(e, options.now, options.retentionDays)) evict.push(e);
    else remaining.push(e);
  }
  let total = remaining.reduce((sum, e) => sum + e.size, 0);
  const lru = remaining
    .filter((e) => e.key !== options.keep)
    .sort((a, b) => a.lastUsedAt - b.lastUsedAt || a.createdAt - b.createdAt);
  for (const e of lru) {
    if (total <= options.scopeMaxBytes) break;
    evict.push(e);
    total -= e.size;
  }
  return evict;
}

export interface StoredObject {
  readonly key: string;
  /** Epoch milliseconds. */
  readonly lastModified: number;
}

/**
 * The daily sweep: expired entries go (item and object), and cache objects no entry points to go
 * once they are older than `orphanGraceMs` (objects of other writers sharing the bucket, such as
 * GitLab's native cache under its own path, are never touched) (a save completes its upload before it commits, so a fresh
 * object without an entry may still be committed).
 */
export function planSweep(
  entries: readonly CacheEntry[],
  objects: readonly StoredObject[],
  options: { now: number; retentionDays: number; orphanGraceMs: number },
): { expired: CacheEntry[]; orphans: string[] } {
  const expired = entries.filter((e) => isExpired(e, options.now, options.retentionDays));
  const referenced = new Set(entries.map((e) => e.objectKey));
  const orphans = objects
    .filter(
      (o) => isCacheObject(o.key) && !referenced.has(o.key) && o.lastModified < options.now - options.orphanGraceMs,
    )
    .map((o) => o.key);
  return { expired, orphans };
}
