/**
 * Build cache throughput: the real client (infra/k8s/cache/ci-cache, /bin/sh + curl + tar) saving
 * and restoring one large file and many small files through the cache API (local HTTP server,
 * DynamoDB Local) to S3 on fauxqs, side by side with a plain parallel transfer of the same number
 * of bytes to the same emulator (the same presigned multipart PUTs and ranged GETs with curl, the
 * same parallelism, without tar, the API or extraction). API and S3 requests are counted.
 *
 *   npx tsx test/bench/cache.ts                 # 1 GiB
 *   CACHE_BENCH_BYTES=268435456 CACHE_BENCH_ROUNDS=5 npx tsx test/bench/cache.ts   # 256 MiB, median of 5
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { buildApp } from 'fauxqs';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { startCacheLocal } from '../../tools/local/cache-local.js';
import { runClient } from '../support/cache.js';
import { startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';

const MiB = 1024 * 1024;
const PARALLEL = 8;
const PART = 8 * MiB;

const sh = promisify(execFile);

interface Figures {
  readonly bytes: number;
  readonly seconds: number;
  readonly mibPerSecond: number;
}

const figures = (bytes: number, ms: number): Figures => ({
  bytes,
  seconds: Number((ms / 1000).toFixed(2)),
  mibPerSecond: Number((bytes / MiB / (ms / 1000)).toFixed(1)),
});

async function writeRandom(file: string, bytes: number): Promise<void> {
  const handle = await open(file, 'w');
  try {
    for (let left = bytes; left > 0; left -= 16 * MiB) await handle.write(randomBytes(Math.min(left, 16 * MiB)));
  } finally {
    await handle.close();
  }
}

export async function benchCache(options: { bytes?: number; files?: number; rounds?: number } = {}) {
  const bytes = options.bytes ?? Number(process.env.CACHE_BENCH_BYTES ?? 1024 * MiB);
  const rounds = options.rounds ?? Number(process.env.CACHE_BENCH_ROUNDS ?? 3);
  const files = options.files ?? 20_000;
  const dynamo = await startDynamoDbLocal();
  useDynamoDbLocal(dynamo.endpoint);
  resetAwsClients();
  const s3Requests: Record<string, number> = {};
  const app = buildApp({ logger: false });
  app.addHook('onRequest', async (req) => {
    const key = req.method;
    s3Requests[key] = (s3Requests[key] ?? 0) + 1;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('fauxqs did not bind');
  const s3Endpoint = `http://127.0.0.1:${address.port}`;
  const apiRequests: string[] = [];
  const cache = await startCacheLocal({
    s3Endpoint,
    dynamoEndpoint: dynamo.endpoint,
    config: { maxEntryBytes: 8 * 1024 * MiB, scopeMaxBytes: 64 * 1024 * MiB, partBytes: PART },
    onRequest: (p) => apiRequests.push(p),
  });
  const token = await cache.issuer.mint();
  const work = await mkdtemp(path.join(os.tmpdir(), 'ci-cache-bench-'));
  const counted = async <T>(run: () => Promise<T>) => {
    apiRequests.length = 0;
    for (const k of Object.keys(s3Requests)) delete s3Requests[k];
    const result = await run();
    return { result, api: apiRequests.length, s3: { ...s3Requests } };
  };

  /** The plain transfer: `file` up as parallel presigned part PUTs, then down as parallel ranges. */
  async function plain(file: string, size: number) {
    const key = `plain/${Date.now()}`;
    const { UploadId } = await cache.s3.send(new CreateMultipartUploadCommand({ Bucket: cache.bucket, Key: key }));
    const parts = Math.max(1, Math.ceil(size / PART));
    const urls = await Promise.all(
      Array.from({ length: parts }, (_, i) =>
        getSignedUrl(cache.s3, new UploadPartCommand({ Bucket: cache.bucket, Key: key, UploadId, PartNumber: i + 1 })),
      ),
    );
    await writeFile(path.join(work, 'plain-parts'), urls.map((u, i) => `${i + 1} ${u}`).join('\n'));
    const up = `cd "${work}" && rm -f etag.*; xargs -P ${PARALLEL} -L 1 sh -c 'dd if="$0" bs=${PART} skip=$(($1 - 1)) count=1 2>/dev/null | curl -sS -f -X PUT --data-binary @- -H "content-type:" -H "expect:" -D h.$1 -o /dev/null "$2" && tr -d "\\r\\"" < h.$1 | sed -n "s/^[Ee][Tt][Aa][Gg]: *//p" > etag.$1' "${file}" < plain-parts`;
    let started = performance.now();
    await sh('/bin/sh', ['-c', up], { maxBuffer: 1 << 24 });
    const { readFile } = await import('node:fs/promises');
    const etags = await Promise.all(
      Array.from({ length: parts }, async (_, i) => (await readFile(path.join(work, `etag.${i + 1}`), 'utf8')).trim()),
    );
    await cache.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: cache.bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag: `"${ETag}"`, PartNumber: i + 1 })) },
      }),
    );
    const upMs = performance.now() - started;
    const url = await getSignedUrl(cache.s3, new GetObjectCommand({ Bucket: cache.bucket, Key: key }));
    const ranges = Array.from({ length: parts }, (_, i) => `${i} ${i * PART}-${Math.min(size, (i + 1) * PART) - 1}`);
    await writeFile(path.join(work, 'plain-ranges'), ranges.join('\n'));
    const down = `cd "${work}" && xargs -P ${PARALLEL} -L 1 sh -c 'curl -sS -f -r "$1" -o "r.$0" "${url}"' < plain-ranges && i=0; while [ $i -lt ${parts} ]; do cat r.$i; rm -f r.$i; i=$((i+1)); done > plain-download`;
    started = performance.now();
    await sh('/bin/sh', ['-c', down], { maxBuffer: 1 << 24 });
    const downMs = performance.now() - started;
    if ((await stat(path.join(work, 'plain-download'))).size !== size) throw new Error('plain download size differs');
    await rm(path.join(work, 'plain-download'));
    return { save: figures(size, upMs), restore: figures(size, downMs), s3RequestsEachWay: parts };
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

  /**
   * `rounds` times, interleaved so that both sides see the same machine load: the client saves
   * (a new key) and restores, then the plain transfer moves the same number of bytes up and down.
   * Medians of the rounds are reported.
   */
  async function dataset(name: string, prepare: (dir: string) => Promise<void>) {
    const dir = path.join(work, name);
    await mkdir(dir, { recursive: true });
    await prepare(dir);
    const client = (args: string[]) =>
      runClient(args, { url: cache.url, token, cwd: work, env: { CI_CACHE_PARALLEL: String(PARALLEL) } });
    const ms = {
      save: [] as number[],
      restore: [] as number[],
      plainSave: [] as number[],
      plainRestore: [] as number[],
    };
    let archive = 0;
    let plainBytes = 0;
    let requests: { api: { save: number; restore: number }; s3: { save: unknown; restore: unknown } } | undefined;
    for (let round = 0; round < rounds; round++) {
      const key = `${name}-${round}-${Date.now()}`;
      const save = await counted(() => client(['save', key, name]));
      if (!/saved /.test(save.result.stderr)) throw new Error(`save failed: ${save.result.stderr}`);
      archive = Number(/saved \S+: (\d+) bytes/.exec(save.result.stderr)?.[1]);
      await rm(dir, { recursive: true });
      const restore = await counted(() => client(['restore', key, name]));
      if (!/hit /.test(restore.result.stderr)) throw new Error(`restore failed: ${restore.result.stderr}`);
      ms.save.push(save.result.ms);
      ms.restore.push(restore.result.ms);
      requests ??= { api: { save: save.api, restore: restore.api }, s3: { save: save.s3, restore: restore.s3 } };
      // The same number of bytes as one plain object (the archive itself, made outside the timing).
      await sh('tar', ['-cf', path.join(work, 'plain.tar'), '-C', work, name]);
      plainBytes = (await stat(path.join(work, 'plain.tar'))).size;
      const base = await plain(path.join(work, 'plain.tar'), plainBytes);
      ms.plainSave.push(base.save.seconds * 1000);
      ms.plainRestore.push(base.restore.seconds * 1000);
      await rm(path.join(work, 'plain.tar'));
    }
    // tar alone (create, then extract into an empty place): what the filesystem costs.
    let t = performance.now();
    await sh('tar', ['-cf', path.join(work, 'plain.tar'), '-C', work, name]);
    const tarCreateMs = performance.now() - t;
    await rm(dir, { recursive: true });
    t = performance.now();
    await sh('tar', ['-xf', path.join(work, 'plain.tar'), '-C', work]);
    const tarExtractMs = performance.now() - t;
    await rm(path.join(work, 'plain.tar'));
    await rm(dir, { recursive: true });
    const client_ = { save: figures(archive, median(ms.save)), restore: figures(archive, median(ms.restore)) };
    const plain_ = {
      save: figures(plainBytes, median(ms.plainSave)),
      restore: figures(plainBytes, median(ms.plainRestore)),
    };
    const secs = (xs: number[]) => xs.map((x) => Number((x / 1000).toFixed(1)));
    return {
      archiveBytes: archive,
      rounds,
      client: { ...client_, ...requests, secondsPerRound: { save: secs(ms.save), restore: secs(ms.restore) } },
      plain: {
        ...plain_,
        s3RequestsEachWay: Math.ceil(plainBytes / PART),
        secondsPerRound: { save: secs(ms.plainSave), restore: secs(ms.plainRestore) },
      },
      tarOnlySeconds: {
        create: Number((tarCreateMs / 1000).toFixed(2)),
        extract: Number((tarExtractMs / 1000).toFixed(2)),
      },
      ratio: {
        save: Number((client_.save.mibPerSecond / plain_.save.mibPerSecond).toFixed(2)),
        restore: Number((client_.restore.mibPerSecond / plain_.restore.mibPerSecond).toFixed(2)),
      },
    };
  }

  try {
    const oneFile = await dataset('one-file', (dir) => writeRandom(path.join(dir, 'blob.bin'), bytes));
    const each = Math.floor(bytes / files);
    const smallFiles = await dataset('small-files', async (dir) => {
      for (let d = 0; d < files / 1000; d++) {
        await mkdir(path.join(dir, `d${d}`));
        await Promise.all(
          Array.from({ length: 1000 }, (_, i) => writeFile(path.join(dir, `d${d}`, `f${i}`), randomBytes(each))),
        );
      }
    });
    return {
      bytes,
      files,
      rounds,
      parallel: PARALLEL,
      partBytes: PART,
      note: 'client = ci-cache (tar + API + presigned parts/ranges + extraction); plain = the same bytes as one object, presigned parts/ranges with curl, no tar/API/extraction',
      oneFile,
      smallFiles,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
    await cache.stop();
    await app.close();
    await dynamo.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchCache(), null, 2));
  process.exit(0);
}
