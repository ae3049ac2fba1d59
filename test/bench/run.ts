/**
 * `npm run bench`: every benchmark, one JSON document on stdout. Figures, not pass/fail: the
 * targets are printed beside them.
 *   npm run bench                 # all
 *   npm run bench -- scaler       # only the named parts (webhook, scaler, e2e, cache)
 *   CACHE_BENCH_BYTES=268435456 npm run bench -- cache   # the cache part with 256 MiB instead of 1 GiB
 */
import { benchCache } from './cache.js';
import { benchEndToEnd } from './e2e.js';
import { benchScaler } from './scaler.js';
import { benchWebhook } from './webhook.js';

const parts = {
  webhook: { run: () => benchWebhook(), targets: 'bundle <= 400 KB, cold import <= 100 ms, overhead p99 <= 2 ms' },
  scaler: {
    run: () => benchScaler(),
    targets:
      '10,000 events applied and provisioned in <= 30 s; Kubernetes calls per tick O(queues); AWS requests per CI job <= 5',
  },
  e2e: { run: () => benchEndToEnd({ jobs: 1000 }), targets: 'webhook POST -> Kubernetes Job created p99 <= 2 s' },
  cache: {
    run: () => benchCache(),
    targets:
      'ci-cache save/restore of 1 GiB (one file; 20,000 files) >= 80% of a plain parallel transfer of the same bytes; API requests O(1) per save and restore, S3 requests O(parts)',
  },
} as const;

const wanted = process.argv.slice(2).filter((a) => a in parts) as (keyof typeof parts)[];
const results: Record<string, unknown> = { node: process.version, date: new Date().toISOString() };
for (const name of wanted.length > 0 ? wanted : (Object.keys(parts) as (keyof typeof parts)[])) {
  results[name] = { targets: parts[name].targets, ...(await parts[name].run()) };
}
console.log(JSON.stringify(results, null, 2));
process.exit(0);
