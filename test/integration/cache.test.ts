/**
 * The build cache end to end: the real shell client (infra/k8s/cache/ci-cache) against the cache
 * API (real handler, real adapters) on a local HTTP server, S3 from fauxqs with real presigned
 * multipart/range URLs, DynamoDB Local with the table of infra/aws/cache.yml, and a local
 * ServiceAccount token issuer (OIDC discovery + JWKS over HTTP, tokens signed with jose).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  GetBucketLifecycleConfigurationCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CacheStore } from '../../functions/adapters/dynamodb/cache-store.js';
import type { CacheBucket } from '../../functions/adapters/s3/cache-bucket.js';
import { ORPHAN_GRACE_MS } from '../../functions/cache/app.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { type CacheLocal, startCacheLocal } from '../../tools/local/cache-local.js';
import { type Fauxqs, startFauxqs } from '../../tools/local/sqs-local.js';
import { type ClientRun, runClient } from '../support/cache.js';
import { type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';

const MiB = 1024 * 1024;

let dynamo: DynamoDbLocal;
let fauxqs: Fauxqs;
let cache: CacheLocal;
let work: string;
let token: string;
let clock = Date.now();
/** The step at which the cache function "crashes" (throws) in the next request, if any. */
let crashAt: string | undefined;
let calls: string[] = [];
let onCall: ((step: string) => void) | undefined;
/** Replaces the download URL a restore hands out (a test of a download failing midway). */
let getUrl: string | undefined;

class Crash extends Error {}

/** Wraps every adapter method: records the call, and throws at `crashAt` (`after:` = once done). */
function instrument<T extends object>(target: T): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]) => {
        calls.push(prop);
        onCall?.(prop);
        if (crashAt === prop) throw new Crash(`crash before ${prop}`);
        if (prop === 'presignGet' && getUrl !== undefined) return Promise.resolve(getUrl);
        const result = value.apply(obj, args);
        if (crashAt === `after:${prop}` && result instanceof Promise) {
          return result.then(() => {
            throw new Crash(`crash after ${prop}`);
          });
        }
        return result;
      };
    },
  });
}

beforeAll(async () => {
  dynamo = await startDynamoDbLocal();
  useDynamoDbLocal(dynamo.endpoint);
  resetAwsClients();
  fauxqs = await startFauxqs();
  cache = await startCacheLocal({
    s3Endpoint: fauxqs.endpoint,
    dynamoEndpoint: dynamo.endpoint,
    config: { maxEntryBytes: 24 * MiB, scopeMaxBytes: 1024 * MiB },
    now: () => clock,
    wrap: ({ bucket, store }) => ({
      bucket: instrument<CacheBucket>(bucket),
      store: instrument<CacheStore>(store),
    }),
  });
  token = await cache.issuer.mint();
});

afterAll(async () => {
  await cache?.stop();
  await fauxqs?.stop();
  await dynamo?.stop();
  resetAwsClients();
});

beforeEach(async () => {
  crashAt = undefined;
  onCall = undefined;
  getUrl = undefined;
  calls = [];
  clock = Date.now();
  work = await mkdtemp(path.join(os.tmpdir(), 'ci-cache-test-'));
  return () => rm(work, { recursive: true, force: true });
});

const client = (
  args: string[],
  options: { token?: string | undefined; url?: string; env?: Record<string, string> } = {},
) =>
  runClient(args, {
    url: options.url ?? cache.url,
    cwd: work,
    ...('token' in options ? { token: options.token } : { token }),
    ...(options.env ? { env: options.env } : {}),
  });

/** A directory of files: one large random file and a few small ones. */
async function makeTree(dir: string, bytes: number, seed = 'a'): Promise<Record<string, Buffer>> {
  await mkdir(path.join(work, dir, 'sub'), { recursive: true });
  const files: Record<string, Buffer> = {
    [`${dir}/big.bin`]: randomBytes(bytes),
    [`${dir}/small.txt`]: Buffer.from(`small ${seed}\n`),
    [`${dir}/sub/nested.txt`]: Buffer.from(`nested ${seed}\n`),
  };
  for (const [name, data] of Object.entries(files)) await writeFile(path.join(work, name), data);
  return files;
}

async function expectTree(files: Record<string, Buffer>): Promise<void> {
  for (const [name, data] of Object.entries(files)) {
    expect((await readFile(path.join(work, name))).equals(data), name).toBe(true);
  }
}

const ok = (run: ClientRun) => {
  expect(run.code, run.stderr).toBe(0);
  return run.stderr;
};

/** A direct API call (null: no authorization header). */
async function api(route: string, body: unknown, bearer: string | null = token): Promise<Response> {
  return fetch(`${cache.url}/cache/${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });
}

async function objects(): Promise<string[]> {
  const out = await cache.s3.send(new ListObjectsV2Command({ Bucket: cache.bucket }));
  return (out.Contents ?? []).map((o) => o.Key ?? '');
}

/** The member names of a tar archive, as `tar -t` lists them. */
async function tarList(archive: Buffer): Promise<string[]> {
  const run = spawnSync('tar', ['-tf', '-', '--quoting-style=literal'], { input: archive, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`tar -t failed: ${run.stderr}`);
  return run.stdout.split('\n').filter(Boolean);
}

let keys = 0;
const freshKey = (name: string) => `${name}-${++keys}-${Date.now()}`;

describe('save and restore through the real client', () => {
  it('misses, saves in parallel parts, then restores the exact key byte for byte', async () => {
    const key = freshKey('deps');
    expect(ok(await client(['restore', key, 'deps']))).toMatch(`miss ${key}`);
    const files = await makeTree('deps', 20 * MiB); // 3 parts of 8 MiB
    const saved = ok(await client(['save', key, 'deps']));
    expect(saved).toMatch(new RegExp(`saved ${key}: \\d+ bytes in 3 part\\(s\\), [\\d.]+ MiB/s`));
    await rm(path.join(work, 'deps'), { recursive: true });
    const hit = ok(await client(['restore', key, 'deps']));
    expect(hit).toMatch(new RegExp(`hit ${key} \\(exact\\): \\d+ bytes, [\\d.]+ MiB/s`));
    await expectTree(files);
  });

  it('falls back over restore-key prefixes in order; the newest match of the first matching prefix wins', async () => {
    const base = freshKey('node');
    await makeTree('mods', 1024, 'old');
    ok(await client(['save', `${base}-linux-aaa`, 'mods']));
    clock += 1000;
    const newer = await makeTree('mods', 2048, 'new');
    ok(await client(['save', `${base}-linux-bbb`, 'mods']));
    clock += 1000;
    await makeTree('mods', 512, 'other');
    ok(await client(['save', `${base}-mac-ccc`, 'mods']));
    await rm(path.join(work, 'mods'), { recursive: true });

    const run = ok(
      await client(['restore', `${base}-linux-zzz`, '--restore-keys', `nothing-,${base}-linux-,${base}-`, 'mods']),
    );
    expect(run).toMatch(`hit ${base}-linux-zzz (from ${base}-linux-bbb)`);
    await expectTree(newer);
  });

  it('restores only the PATHs it names: absolute ones where they were saved, from any directory', async () => {
    const key = freshKey('paths');
    const a = await makeTree('pa', 100, 'a');
    const b = await makeTree('pb', 100, 'b');
    ok(await client(['save', key, path.join(work, 'pa'), path.join(work, 'pb')]));
    await rm(path.join(work, 'pa'), { recursive: true });
    await rm(path.join(work, 'pb'), { recursive: true });
    await mkdir(path.join(work, 'elsewhere'));
    // From another directory, naming only pb (with ..): pb comes back, pa does not.
    const run = await runClient(['restore', key, `${path.join(work, 'elsewhere')}/../pb`], {
      url: cache.url,
      token,
      cwd: path.join(work, 'elsewhere'),
    });
    expect(run.stderr).toMatch(`hit ${key}`);
    await expectTree(b);
    await expect(readFile(path.join(work, Object.keys(a)[0]!))).rejects.toThrow(/ENOENT/);
  });

  it('relative PATHs are relative to the working directory: saved in one checkout, restored into another', async () => {
    // Buildkite checks out into $BUILDKITE_BUILD_PATH/<agent name>/<org>/<pipeline>, and the agent
    // name is the pod name: the next job's checkout is another directory.
    const key = freshKey('across-agents');
    const first = path.join(work, 'builds/agent-a/org/pipeline');
    const second = path.join(work, 'builds/agent-b/org/pipeline');
    await mkdir(path.join(first, 'node_modules/pkg'), { recursive: true });
    await mkdir(second, { recursive: true });
    const data = randomBytes(64 * 1024);
    await writeFile(path.join(first, 'node_modules/pkg/index.js'), data);
    await writeFile(path.join(work, 'builds/agent-a/org/shared.txt'), 'beside the checkout\n');
    const at = (cwd: string, args: string[]) => runClient(args, { url: cache.url, token, cwd });
    ok(await at(first, ['save', key, 'node_modules', './node_modules/../../shared.txt']));
    const hit = ok(await at(second, ['restore', key, 'node_modules', '../shared.txt']));
    expect(hit).toMatch(`hit ${key} (exact)`);
    expect((await readFile(path.join(second, 'node_modules/pkg/index.js'))).equals(data)).toBe(true);
    expect(await readFile(path.join(work, 'builds/agent-b/org/shared.txt'), 'utf8')).toBe('beside the checkout\n');
    // Nothing was written under the first checkout's absolute path from the second.
    expect((await readFile(path.join(first, 'node_modules/pkg/index.js'))).equals(data)).toBe(true);
    // A relative PATH is not an absolute one: naming the first checkout's absolute path finds nothing.
    const other = await at(second, ['restore', key, path.join(first, 'node_modules')]);
    expect(other.stderr).toMatch(/warning: restore .*failed, nothing restored/);
  });

  it('a read-only directory tree (a Go module cache) restores whole, every time, with its modes', async () => {
    // Parallel tars that each made directories lost about one restore in eight of this tree.
    const key = freshKey('gomod');
    const files: Record<string, Buffer> = {};
    for (let d = 0; d < 12; d++) {
      await mkdir(path.join(work, 'gomod', `m${d}`, 'sub'), { recursive: true });
      for (let i = 0; i < 100; i++) files[`gomod/m${d}/sub/f${i}`] = randomBytes(64 + i);
    }
    for (const [name, data] of Object.entries(files)) await writeFile(path.join(work, name), data);
    const readOnly = Object.keys(files).map((name) => path.dirname(name));
    for (const dir of new Set(readOnly)) await chmod(path.join(work, dir), 0o555);
    try {
      ok(await client(['save', key, 'gomod']));
      for (let round = 0; round < 6; round++) {
        const into = path.join(work, `gomod-restore-${round}`);
        await mkdir(into);
        const run = await runClient(['restore', key, 'gomod'], { url: cache.url, token, cwd: into });
        expect(run.stderr, `round ${round}`).toMatch(`hit ${key} (exact)`);
        for (const [name, data] of Object.entries(files))
          expect((await readFile(path.join(into, name))).equals(data), name).toBe(true);
        expect((await stat(path.join(into, 'gomod/m3/sub'))).mode & 0o777).toBe(0o555);
        expect((await stat(path.join(into, 'gomod/m3'))).mode & 0o777).not.toBe(0o555);
        for (const dir of new Set(readOnly)) await chmod(path.join(into, dir), 0o755);
      }
    } finally {
      for (const dir of new Set(readOnly)) await chmod(path.join(work, dir), 0o755);
    }
  });

  it('many small files: saved as 4 tar shards extracted in parallel; a restore of some PATHs gets those only', async () => {
    const key = freshKey('many');
    const before = new Set(await objects());
    const files: Record<string, Buffer> = {};
    for (const dir of ['many-a', 'many-b']) {
      for (let d = 0; d < 3; d++) {
        await mkdir(path.join(work, dir, `d${d}`), { recursive: true });
        for (let i = 0; i < 200; i++) files[`${dir}/d${d}/f${i}`] = randomBytes(100 + i);
      }
    }
    await writeFile(path.join(work, 'many-a/back\\slash'), 'kept verbatim\n');
    files['many-a/back\\slash'] = Buffer.from('kept verbatim\n');
    for (const [name, data] of Object.entries(files)) await writeFile(path.join(work, name), data);
    ok(await client(['save', key, 'many-a', 'many-b']));
    const [object] = (await objects()).filter((o) => !before.has(o));
    const whole = await cache.s3.send(new GetObjectCommand({ Bucket: cache.bucket, Key: object! }));
    const bytes = Buffer.from(await whole.Body!.transformToByteArray());
    // A 512-byte header says where each tar archive starts: the directories', then 4 of files.
    const header = bytes.subarray(0, 512).toString('utf8');
    expect(header).toMatch(/^ci-cache-shards 512 \d+ \d+ \d+ \d+ *\n$/);
    // The first holds the directories only (a restore makes them before the parallel tars, which
    // would race to make them: one fails with "Cannot open: No such file or directory").
    const [, second] = header.trim().split(' ').slice(1).map(Number);
    const dirs = await tarList(bytes.subarray(512, second));
    expect(dirs.length).toBe(8); // many-a, many-b and their d0..d2
    expect(
      dirs.every((name) => name.endsWith('/')),
      dirs.join(' '),
    ).toBe(true);

    // Into another checkout, all of it: byte for byte.
    const other = path.join(work, 'other');
    await mkdir(other);
    const all = await runClient(['restore', key, 'many-a', 'many-b'], { url: cache.url, token, cwd: other });
    expect(all.stderr).toMatch(`hit ${key} (exact)`);
    for (const [name, data] of Object.entries(files))
      expect((await readFile(path.join(other, name))).equals(data), name).toBe(true);
    // Only many-b: many-a does not come back, although every shard holds some of both.
    const third = path.join(work, 'third');
    await mkdir(third);
    const some = await runClient(['restore', key, 'many-b'], { url: cache.url, token, cwd: third });
    expect(some.stderr).toMatch(`hit ${key} (exact)`);
    expect((await readFile(path.join(third, 'many-b/d2/f199'))).equals(files['many-b/d2/f199']!)).toBe(true);
    await expect(readFile(path.join(third, 'many-a/d0/f0'))).rejects.toThrow(/ENOENT/);
    // A PATH the entry does not hold: no shard has it, so nothing is restored.
    const fourth = path.join(work, 'fourth');
    await mkdir(fourth);
    const none = await runClient(['restore', key, 'many-b', 'many-c'], { url: cache.url, token, cwd: fourth });
    expect(none.stderr).toMatch(/warning: restore .*failed, nothing restored: .*many-c: Not found in archive/);
    await expect(readFile(path.join(fourth, 'many-b/d0/f0'))).rejects.toThrow(/ENOENT/);
  });

  it('the working directory itself is not a PATH: a warning on save, a usage error on restore', async () => {
    const key = freshKey('dot');
    await makeTree('d', 10);
    const saved = ok(await client(['save', key, '.', 'd']));
    expect(saved).toMatch(/warning: not saving \.: \/ or the working directory itself/);
    expect(saved).toMatch(`saved ${key}`);
    const run = await client(['restore', key, '.']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/cannot restore \.: \/ or the working directory itself/);
  });

  it('keeps a key immutable: of two concurrent saves exactly one wins, whole', async () => {
    const key = freshKey('race');
    await mkdir(path.join(work, 'a'));
    await mkdir(path.join(work, 'b'));
    const a = randomBytes(12 * MiB);
    const b = randomBytes(12 * MiB);
    await writeFile(path.join(work, 'a/data'), a);
    await writeFile(path.join(work, 'b/data'), b);
    const [ra, rb] = await Promise.all([client(['save', key, 'a']), client(['save', key, 'b'])]);
    const outputs = [ok(ra), ok(rb)];
    expect(outputs.filter((o) => o.includes(`saved ${key}`))).toHaveLength(1);
    expect(outputs.filter((o) => o.includes(`exists ${key}`))).toHaveLength(1);
    const winner = outputs[0]!.includes(`saved ${key}`) ? 'a' : 'b';
    // A later save of the key is told it exists and changes nothing.
    expect(ok(await client(['save', key, winner === 'a' ? 'b' : 'a']))).toMatch(`exists ${key}`);
    await rm(path.join(work, 'a'), { recursive: true });
    await rm(path.join(work, 'b'), { recursive: true });
    ok(await client(['restore', key, winner]));
    expect((await readFile(path.join(work, winner, 'data'))).equals(winner === 'a' ? a : b)).toBe(true);
    // The loser's object was deleted: one object for the key's one entry.
    const mine = (await objects()).length;
    ok(await client(['save', freshKey('other'), winner]));
    expect((await objects()).length).toBe(mine + 1);
  });

  it('isolates scopes: another ServiceAccount neither reads nor overwrites the entries', async () => {
    const key = freshKey('scoped');
    const mine = await makeTree('s', 4096, 'mine');
    ok(await client(['save', key, 's']));
    const other = await cache.issuer.mint({ serviceAccount: 'ci-agent-other-queue' });
    const otherNs = await cache.issuer.mint({ namespace: 'other-team' });
    expect(ok(await client(['restore', key, 's'], { token: other }))).toMatch(`miss ${key}`);
    expect(ok(await client(['restore', key, 's'], { token: otherNs }))).toMatch(`miss ${key}`);
    await makeTree('s', 4096, 'theirs');
    expect(ok(await client(['save', key, 's'], { token: other }))).toMatch(`saved ${key}`);
    await rm(path.join(work, 's'), { recursive: true });
    ok(await client(['restore', key, 's']));
    await expectTree(mine);
    // An upload id of another scope is refused.
    const started = (await (await api('save', { key: freshKey('x'), size: 10 }, other)).json()) as {
      upload: string;
      object: string;
    };
    const res = await api('save/complete', {
      key: freshKey('x'),
      size: 10,
      upload: started.upload,
      object: started.object,
      parts: [{ partNumber: 1, etag: 'abc' }],
    });
    expect(res.status).toBe(400);
  });

  it('refuses an entry over CACHE_MAX_ENTRY_BYTES before any upload', async () => {
    const key = freshKey('huge');
    await mkdir(path.join(work, 'huge'));
    await writeFile(path.join(work, 'huge/blob'), randomBytes(25 * MiB));
    const run = ok(await client(['save', key, 'huge']));
    expect(run).toMatch(/warning: not saved, too large: .*CACHE_MAX_ENTRY_BYTES/);
    expect(calls).not.toContain('createUpload');
    expect(ok(await client(['restore', key, 'huge']))).toMatch(`miss ${key}`);
  });

  it('rejects bad keys: usage error in the client, 400 from the API', async () => {
    for (const bad of ['../etc', 'a//b', 'a/./b', '/abs', 'sp ace', 'semi;colon', 'x'.repeat(513)]) {
      const run = await client(['save', bad, '.']);
      expect(run.code, bad).toBe(2);
      expect(run.stderr).toMatch(/invalid key/);
      expect((await api('restore', { key: bad })).status, bad).toBe(400);
    }
    expect((await client(['restore', 'ok', '--restore-keys', 'a/../b', '.'])).code).toBe(2);
    expect((await client(['save', 'only-key'])).code).toBe(2);
    expect((await client(['frobnicate'])).code).toBe(2);
  });

  it('answers 401 to missing, expired, wrong-audience, wrong-issuer and forged tokens; the client exits 0', async () => {
    const key = freshKey('auth');
    await makeTree('t', 100);
    const bad = {
      expired: await cache.issuer.mint({ expiresInSeconds: -120 }),
      'wrong audience': await cache.issuer.mint({ audience: 'https://kubernetes.default.svc' }),
      'wrong issuer': await cache.issuer.mint({ issuer: 'https://evil.example' }),
      forged: await cache.issuer.mint({ forged: true }),
      'not a JWT': 'not-a-jwt',
    };
    for (const [what, t] of Object.entries(bad)) {
      expect((await api('restore', { key }, t)).status, what).toBe(401);
      const run = ok(await client(['save', key, 't'], { token: t }));
      expect(run, what).toMatch(/warning: save .*HTTP 401/);
    }
    expect((await api('restore', { key }, null)).status).toBe(401);
    expect(ok(await client(['restore', key, 't'], { token: undefined }))).toMatch(/HTTP 401/);
    expect(calls).not.toContain('createUpload');
    expect(ok(await client(['restore', key, 't']))).toMatch(`miss ${key}`);
  });
});

describe('never fails a build', () => {
  it("answers 503 (retry), not 401, while the issuer's keys cannot be fetched; the client exits 0", async () => {
    const port = await closedPort();
    const down = await startCacheLocal({
      s3Endpoint: fauxqs.endpoint,
      dynamoEndpoint: dynamo.endpoint,
      config: { tokenIssuer: `http://127.0.0.1:${port}` },
    });
    try {
      const res = await fetch(`${down.url}/cache/restore`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ key: 'k' }),
      });
      expect(res.status).toBe(503);
      const run = ok(await client(['restore', 'k', 'x'], { url: down.url, env: { CI_CACHE_ATTEMPTS: '2' } }));
      expect(run).toMatch(/warning: restore k: HTTP 503/);
    } finally {
      await down.stop();
    }
  });

  it('exits 0 within its bound when the API is down (connection refused)', async () => {
    await makeTree('d', 100);
    const port = await closedPort();
    const run = ok(
      await client(['save', freshKey('down'), 'd'], {
        url: `http://127.0.0.1:${port}`,
        env: { CI_CACHE_TIMEOUT: '10', CI_CACHE_ATTEMPTS: '3' },
      }),
    );
    expect(run).toMatch(/warning: save .*unreachable/);
    expect(run).toMatch(/the build goes on/);
  });

  it('exits 0 within CI_CACHE_TIMEOUT when the API accepts connections but never answers', async () => {
    const sockets: net.Socket[] = [];
    const blackhole = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    const port = (blackhole.address() as net.AddressInfo).port;
    try {
      const run = await client(['restore', freshKey('hang'), 'd'], {
        url: `http://127.0.0.1:${port}`,
        env: { CI_CACHE_TIMEOUT: '4', CI_CACHE_ATTEMPTS: '5' },
      });
      expect(run.code).toBe(0);
      expect(run.ms).toBeLessThan(8_000);
      expect(run.stderr).toMatch(/warning: restore/);
    } finally {
      for (const s of sockets) s.destroy();
      blackhole.close();
    }
  });
});

describe('a restore that fails midway restores nothing', () => {
  it('removes what it had extracted when a later range cannot be downloaded; exits 0', async () => {
    const key = freshKey('midway');
    const before = new Set(await objects());
    await makeTree('m', 20 * MiB, 'm');
    ok(await client(['save', key, 'm']));
    const [object] = (await objects()).filter((o) => !before.has(o));
    // A copy of only the first 9 MiB: the first 8 MiB range is fine, the others fail.
    const whole = await cache.s3.send(new GetObjectCommand({ Bucket: cache.bucket, Key: object! }));
    const head = Buffer.from((await whole.Body!.transformToByteArray()).subarray(0, 9 * MiB));
    await cache.s3.send(new PutObjectCommand({ Bucket: cache.bucket, Key: 'truncated', Body: head }));
    getUrl = await getSignedUrl(cache.s3, new GetObjectCommand({ Bucket: cache.bucket, Key: 'truncated' }));
    await rm(path.join(work, 'm'), { recursive: true });
    const run = ok(await client(['restore', key, 'm'], { env: { CI_CACHE_ATTEMPTS: '2' } }));
    expect(run).toMatch(/warning: restore .*failed, nothing restored/);
    await expect(readFile(path.join(work, 'm/small.txt'))).rejects.toThrow(/ENOENT/);
    await expect(readFile(path.join(work, 'm/big.bin'))).rejects.toThrow(/ENOENT/);
  });
});

describe('a crash at any step of a save leaves no visible partial entry', () => {
  const steps = [
    { crashAt: 'get', visible: false }, // before anything
    { crashAt: 'createUpload', visible: false },
    { crashAt: 'presignParts', visible: false }, // an upload exists, nobody has its URLs
    { crashAt: 'after:complete', visible: false }, // object complete, no entry: an orphan
    { crashAt: 'size', visible: false },
    { crashAt: 'commit', visible: false },
    { crashAt: 'query', visible: true }, // committed, eviction not run: the entry is whole
  ];
  for (const step of steps) {
    it(`cache function crash at ${step.crashAt}`, async () => {
      const key = freshKey(`crash-${step.crashAt.replace(':', '-')}`);
      const files = await makeTree('c', 12 * MiB, step.crashAt);
      const before = new Set(await objects());
      crashAt = step.crashAt;
      const run = ok(await client(['save', key, 'c'], { env: { CI_CACHE_ATTEMPTS: '1' } }));
      crashAt = undefined;
      expect(run).toMatch(/warning: save .*HTTP 503/);

      await rm(path.join(work, 'c'), { recursive: true });
      const restored = ok(await client(['restore', key, 'c']));
      if (step.visible) {
        expect(restored).toMatch(`hit ${key}`);
        await expectTree(files);
      } else {
        expect(restored).toMatch(`miss ${key}`);
      }
      // The sweep removes what the crash left (an orphan object) once past the grace period;
      // incomplete multipart uploads are S3's lifecycle rule's (checked below).
      clock = Date.now() + ORPHAN_GRACE_MS + 60_000;
      await cache.sweep();
      clock = Date.now();
      const left = (await objects()).filter((o) => !before.has(o));
      expect(left).toHaveLength(step.visible ? 1 : 0);
      // The key is not blocked: a new save works (or, if visible, is told it exists).
      await makeTree('c', 1024, 'again');
      expect(ok(await client(['save', key, 'c']))).toMatch(step.visible ? `exists ${key}` : `saved ${key}`);
    });
  }

  it('a completion retried after the function crashed past CompleteMultipartUpload still saves', async () => {
    const key = freshKey('retried');
    const files = await makeTree('r', 12 * MiB, 'r');
    crashAt = 'after:complete';
    onCall = (s) => {
      if (s === 'complete' && calls.filter((c) => c === 'complete').length > 1) crashAt = undefined;
    };
    expect(ok(await client(['save', key, 'r']))).toMatch(`saved ${key}`);
    expect(calls.filter((c) => c === 'complete')).toHaveLength(2);
    await rm(path.join(work, 'r'), { recursive: true });
    expect(ok(await client(['restore', key, 'r']))).toMatch(`hit ${key}`);
    await expectTree(files);
  });

  it('two completions of the same upload (a client retry racing the first) both answer saved; the entry stays whole', async () => {
    const key = freshKey('twice');
    const data = randomBytes(6 * MiB);
    const started = (await (await api('save', { key, size: data.length })).json()) as {
      upload: string;
      object: string;
      parts: string[];
    };
    const put = await fetch(started.parts[0]!, { method: 'PUT', body: data });
    const etag = put.headers.get('etag')!;
    const body = { key, size: data.length, upload: started.upload, object: started.object };
    const complete = () => api('save/complete', { ...body, parts: [{ partNumber: 1, etag }] });
    const answers = await Promise.all([complete(), complete()]);
    expect(answers.map((r) => r.status)).toEqual([201, 201]);
    const found = (await (await api('restore', { key })).json()) as { url: string };
    const got = Buffer.from(await (await fetch(found.url)).arrayBuffer());
    expect(got.equals(data)).toBe(true);
  });

  it('client killed during the part uploads: no entry, the key still saves later', async () => {
    const key = freshKey('killed');
    await makeTree('k', 20 * MiB, 'k');
    let pid = 0;
    onCall = (s) => {
      if (s === 'presignParts') setTimeout(() => process.kill(-pid, 'SIGKILL'), 50);
    };
    const run = await runClient(['save', key, 'k'], {
      url: cache.url,
      token,
      cwd: work,
      onSpawn: (p) => {
        pid = p;
      },
    });
    onCall = undefined;
    expect(run.signal).toBe('SIGKILL');
    expect(calls).not.toContain('complete');
    expect(ok(await client(['restore', key, 'k']))).toMatch(`miss ${key}`);
    expect(ok(await client(['save', key, 'k']))).toMatch(`saved ${key}`);
  });

  it('the bucket aborts incomplete multipart uploads after a day (lifecycle rule from infra/aws/cache.yml)', async () => {
    const out = await cache.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: cache.bucket }));
    expect(out.Rules).toEqual([
      expect.objectContaining({ Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
    ]);
  });
});

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
