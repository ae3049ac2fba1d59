/**
 * `npm run bench`: every benchmark, one JSON document on stdout; progress on stderr while it
 * runs. Figures, not pass/fail: the targets are printed beside them.
 *   npm run bench                          # all parts
 *   npm run bench -- --only e2e            # one part (webhook, scaler, e2e, dynamo, cache)
 *   npm run bench -- --only scaler,dynamo  # several (or: npm run bench -- scaler dynamo)
 * Each part also runs alone as a script with its own knobs (see the header of each file), e.g.
 *   npx tsx test/bench/e2e.ts 12000 200    # 12,000 CI jobs at 200 webhooks/s (one minute)
 *   npx tsx test/bench/scaler.ts 100000    # a burst of 100,000 scheduled jobs
 *   CACHE_BENCH_BYTES=268435456 npm run bench -- --only cache   # the cache part with 256 MiB, not 1 GiB
 */
import { benchCache } from './cache.js';
import { benchLedgerParts } from './dynamo.js';
import { benchEndToEnd } from './e2e.js';
import { progress } from './progress.js';
import { benchScaler } from './scaler.js';
import { benchWebhook } from './webhook.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const parts = {
  webhook: { run: () => benchWebhook(), targets: 'bundle <= 400 KB, cold import <= 100 ms, overhead p99 <= 2 ms' },
  scaler: {
    run: () => benchScaler([1_000, 10_000]),
    targets:
      '100,000 events applied and provisioned in <= 60 s (npx tsx test/bench/scaler.ts 100000); Kubernetes calls per tick O(queues); scaler AWS requests per CI job <= 4',
  },
  e2e: {
    run: () => benchEndToEnd({ jobs: 12_000, ratePerSecond: 200 }),
    targets: '200 webhooks/s for 60 s: webhook POST -> Kubernetes Job created p99 <= 300 ms',
  },
  dynamo: {
    run: () => benchLedgerParts([1_000, 10_000]),
    targets: 'ledger apply: DynamoDB requests per event well under 1 (batched, still conditional)',
  },
  cache: {
    run: () => benchCache(),
    targets:
      'ci-cache save/restore of 1 GiB (one file; 20,000 files) >= 80% of a plain parallel transfer of the same bytes; API requests O(1) per save and restore, S3 requests O(parts)',
  },
} as const;
type Part = keyof typeof parts;
const isPart = (a: string): a is Part => a in parts;

export function parseParts(argv: readonly string[]): Part[] {
  const named: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--only') named.push(...(argv[++i] ?? '').split(','));
    else if (a.startsWith('--only=')) named.push(...a.slice('--only='.length).split(','));
    else if (a.startsWith('-')) throw new Error(`unknown option ${a} (use --only ${Object.keys(parts).join(',')})`);
    else named.push(a);
  }
  const wanted = named.map((n) => n.trim()).filter((n) => n !== '');
  const unknown = wanted.filter((n) => !isPart(n));
  if (unknown.length > 0)
    throw new Error(`unknown part ${unknown.join(', ')} (parts: ${Object.keys(parts).join(', ')})`);
  return wanted.length > 0 ? wanted.filter(isPart) : (Object.keys(parts) as Part[]);
}

let wanted: Part[];
try {
  wanted = parseParts(process.argv.slice(2));
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(2);
}
const results: Record<string, unknown> = { node: process.version, date: new Date().toISOString() };
for (const name of wanted) {
  progress(name, 'starting');
  const started = performance.now();
  results[name] = { targets: parts[name].targets, ...(await parts[name].run()) };
  progress(name, `done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
console.log(JSON.stringify(results, null, 2));
process.exit(0);
