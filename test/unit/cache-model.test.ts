import { describe, expect, it } from 'vitest';
import {
  type CacheEntry,
  keyProblem,
  MIN_PART_BYTES,
  ownsObject,
  partListProblem,
  planEviction,
  planParts,
  planSweep,
  scopeFromClaims,
  selectRestore,
} from '../../functions/core/cache/model.js';

const DAY = 86_400_000;
const NOW = 1_800_000_000_000;

function entry(key: string, o: Partial<CacheEntry> = {}): CacheEntry {
  return {
    scope: 'ci-agents/ci-agent',
    key,
    objectKey: `ci-agents/ci-agent/${key}`,
    size: 100,
    createdAt: NOW - DAY,
    lastUsedAt: NOW - DAY,
    ...o,
  };
}

describe('keys', () => {
  it('accepts typical cache keys', () => {
    for (const k of ['node-modules-linux-3f2a', 'gems/v2/Gemfile.lock=ab12', 'go:1.22@amd64', 'a.b_c+d']) {
      expect(keyProblem(k), k).toBeUndefined();
    }
  });
  it('refuses empty, long, odd characters and path tricks', () => {
    for (const k of [
      '',
      'x'.repeat(513),
      'a b',
      'a\nb',
      'semi;',
      '../up',
      'a/../b',
      'a/./b',
      './a',
      '/abs',
      'a//b',
      'a/',
    ]) {
      expect(keyProblem(k), JSON.stringify(k)).toBeDefined();
    }
    expect(keyProblem(42)).toBeDefined();
  });
  it('lets a restore-key prefix end with /', () => {
    expect(keyProblem('deps/', { prefix: true })).toBeUndefined();
    expect(keyProblem('deps/../', { prefix: true })).toBeDefined();
  });
});

describe('scope from a projected ServiceAccount token', () => {
  const claims = {
    iss: 'https://oidc.eks.us-east-1.amazonaws.com/id/X',
    sub: 'system:serviceaccount:ci-agents:ci-agent-linux',
    aud: ['ci-cache'],
    'kubernetes.io': {
      namespace: 'ci-agents',
      pod: { name: 'agent-abc', uid: 'u1' },
      serviceaccount: { name: 'ci-agent-linux', uid: 'u2' },
    },
  };
  it('is namespace/name of the kubernetes.io claims', () => {
    expect(scopeFromClaims(claims)).toEqual({ namespace: 'ci-agents', serviceAccount: 'ci-agent-linux' });
  });
  it('requires sub to agree and the claims to be there', () => {
    expect(scopeFromClaims({ ...claims, sub: 'system:serviceaccount:ci-agents:other' })).toBeUndefined();
    expect(scopeFromClaims({ sub: claims.sub })).toBeUndefined();
    expect(
      scopeFromClaims({ ...claims, 'kubernetes.io': { namespace: '../x', serviceaccount: { name: 'a' } } }),
    ).toBeUndefined();
  });
  it('owns only its own objects', () => {
    const scope = { namespace: 'ci-agents', serviceAccount: 'a' };
    expect(ownsObject(scope, 'ci-agents/a/0b6a4f0e-3c43-4c55-9d8e-0d8c7f1a2b3c')).toBe(true);
    expect(ownsObject(scope, 'ci-agents/ab/0b6a4f0e-3c43-4c55-9d8e-0d8c7f1a2b3c')).toBe(false);
    expect(ownsObject(scope, 'ci-agents/a/../b/0b6a4f0e-3c43-4c55-9d8e-0d8c7f1a2b3c')).toBe(false);
  });
});

describe('parts', () => {
  it('cuts at the preferred size, never below 5 MiB, growing past 10,000 parts', () => {
    expect(planParts(20 * 2 ** 20, 8 * 2 ** 20)).toEqual({ partBytes: 8 * 2 ** 20, parts: 3 });
    expect(planParts(0, 8 * 2 ** 20)).toEqual({ partBytes: 8 * 2 ** 20, parts: 1 });
    expect(planParts(10, 1)).toEqual({ partBytes: MIN_PART_BYTES, parts: 1 });
    const big = planParts(200 * 2 ** 30, 8 * 2 ** 20);
    expect(big.parts).toBeLessThanOrEqual(10_000);
    expect(big.partBytes * big.parts).toBeGreaterThanOrEqual(200 * 2 ** 30);
  });
  it('checks the client names every planned part in order with an ETag', () => {
    const plan = { partBytes: 8, parts: 2 };
    expect(
      partListProblem(
        [
          { partNumber: 1, etag: '"abc"' },
          { partNumber: 2, etag: 'def' },
        ],
        plan,
      ),
    ).toBeUndefined();
    expect(partListProblem([{ partNumber: 1, etag: 'abc' }], plan)).toMatch(/expected 2/);
    expect(
      partListProblem(
        [
          { partNumber: 2, etag: 'a' },
          { partNumber: 1, etag: 'b' },
        ],
        plan,
      ),
    ).toMatch(/missing/);
    expect(
      partListProblem(
        [
          { partNumber: 1, etag: 'a"},{' },
          { partNumber: 2, etag: 'b' },
        ],
        plan,
      ),
    ).toMatch(/ETag/);
  });
});

describe('restore selection', () => {
  const entries = [
    entry('deps-linux-a', { createdAt: NOW - 3 * DAY }),
    entry('deps-linux-b', { createdAt: NOW - 2 * DAY }),
    entry('deps-mac-c', { createdAt: NOW - 1 * DAY }),
  ];
  it('prefers the exact key', () => {
    expect(selectRestore(entries, 'deps-linux-a', ['deps-'], NOW, 7)).toMatchObject({
      entry: { key: 'deps-linux-a' },
      exact: true,
    });
  });
  it('tries prefixes in order and takes the newest match of the first that matches', () => {
    expect(selectRestore(entries, 'deps-linux-z', ['none-', 'deps-linux-', 'deps-'], NOW, 7)).toMatchObject({
      entry: { key: 'deps-linux-b' },
      exact: false,
    });
    expect(selectRestore(entries, 'x', ['deps-'], NOW, 7)?.entry.key).toBe('deps-mac-c');
    expect(selectRestore(entries, 'x', ['none-'], NOW, 7)).toBeUndefined();
  });
  it('never returns an expired entry', () => {
    const old = [entry('k', { lastUsedAt: NOW - 8 * DAY })];
    expect(selectRestore(old, 'k', ['k'], NOW, 7)).toBeUndefined();
  });
});

describe('eviction', () => {
  it('evicts expired entries, then least recently used until the scope fits', () => {
    const entries = [
      entry('old', { lastUsedAt: NOW - 10 * DAY, size: 10 }),
      entry('lru', { lastUsedAt: NOW - 3 * DAY, size: 400 }),
      entry('mid', { lastUsedAt: NOW - 2 * DAY, size: 400 }),
      entry('new', { lastUsedAt: NOW, size: 400 }),
    ];
    const evicted = planEviction(entries, { now: NOW, retentionDays: 7, scopeMaxBytes: 900, keep: 'new' });
    expect(evicted.map((e) => e.key)).toEqual(['old', 'lru']);
  });
  it('never evicts the entry just saved', () => {
    const entries = [entry('new', { lastUsedAt: NOW - 100 * DAY, size: 5000 })];
    expect(planEviction(entries, { now: NOW, retentionDays: 7, scopeMaxBytes: 10, keep: 'new' })).toEqual([]);
  });
  it('sweeps expired entries and orphan objects past the grace period', () => {
    const entries = [entry('live'), entry('gone', { lastUsedAt: NOW - 30 * DAY })];
    const old = 'ci-agents/ci-agent/0b6a4f0e-3c43-4c55-9d8e-0d8c7f1a2b3c';
    const fresh = 'ci-agents/ci-agent/1b6a4f0e-3c43-4c55-9d8e-0d8c7f1a2b3c';
    const objects = [
      { key: 'ci-agents/ci-agent/live', lastModified: NOW - 5 * DAY },
      { key: old, lastModified: NOW - DAY },
      { key: fresh, lastModified: NOW - 60_000 },
      { key: 'gitlab/project/42/default-protected', lastModified: NOW - 9 * DAY }, // GitLab's own cache
    ];
    const plan = planSweep(entries, objects, { now: NOW, retentionDays: 7, orphanGraceMs: 3_600_000 });
    expect(plan.expired.map((e) => e.key)).toEqual(['gone']);
    expect(plan.orphans).toEqual([old]);
  });
});
