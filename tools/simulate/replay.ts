/**
 * Replay of real job history (`npm run simulate -- --from FILE`): reads a provider's own REST API
 * output for past jobs and turns it into a trace. Field names are the providers':
 *
 * - GitHub, "List jobs for a workflow run" (GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs):
 *   `{ "total_count", "jobs": [{ id, status, conclusion, created_at, started_at, completed_at,
 *   labels, runner_name, ... }] }`; one page, an array of pages (`gh api --paginate --slurp`) or
 *   pages one after another (`gh api --paginate`). The job waits from created_at; it runs from
 *   started_at to completed_at; `labels` (without "self-hosted") name the queue.
 * - Buildkite, builds with their jobs (GET /v2/organizations/{org}/pipelines/{pipeline}/builds):
 *   an array of builds, each with `jobs: [{ id, type, state, created_at, scheduled_at,
 *   runnable_at, started_at, finished_at, agent_query_rules }]`. Only `script` jobs need an
 *   agent; the job waits from runnable_at (else scheduled_at, created_at); `queue=NAME` in
 *   agent_query_rules names the queue.
 * - GitLab, project jobs (GET /projects/{id}/jobs): an array of `{ id, status, created_at,
 *   started_at, finished_at, queued_duration, tag_list }`. The job waits from started_at minus
 *   queued_duration (else created_at); `tag_list` names the queue.
 *
 * A job cancelled before it started has `cancelAt` at its finish time; jobs that never needed an
 * agent (skipped, manual, blocked, not yet finished) are left out and counted.
 */
import { readFileSync } from 'node:fs';
import type { TraceJob } from './trace.js';

export type ReplayProvider = 'github' | 'buildkite' | 'gitlab';

export interface Replay {
  readonly provider: ReplayProvider;
  readonly jobs: TraceJob[];
  /** Jobs in the file that were left out (never needed an agent, or not finished). */
  readonly skipped: number;
  /** Epoch ms of the first job (t = 0 of the trace). */
  readonly startMs: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const time = (v: unknown): number | undefined => {
  const s = str(v);
  const t = s === undefined ? Number.NaN : Date.parse(s);
  return Number.isFinite(t) ? t : undefined;
};

/** Whole JSON, or JSON documents one after another (`gh api --paginate` without --slurp). */
function parseDocuments(text: string): unknown[] {
  try {
    return [JSON.parse(text)];
  } catch {
    // Split top-level documents by tracking brace depth outside strings.
    const docs: unknown[] = [];
    let depth = 0;
    let start = -1;
    let inString = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === '{' || c === '[') {
        if (depth === 0) start = i;
        depth++;
      } else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0 && start >= 0) {
          docs.push(JSON.parse(text.slice(start, i + 1)));
          start = -1;
        }
      }
    }
    if (docs.length === 0) throw new Error('not JSON');
    return docs;
  }
}

interface Raw {
  id: string;
  waitFrom: number;
  started?: number;
  ended?: number;
  cancelled: boolean;
  queue: string;
}

function github(job: Json): Raw | undefined {
  if (job.status !== 'completed' || job.conclusion === 'skipped') return undefined;
  const created = time(job.created_at);
  const completed = time(job.completed_at);
  if (created === undefined || completed === undefined) return undefined;
  // A job cancelled while queued never got a runner (runner_name stays null).
  const ran = str(job.runner_name) !== undefined;
  const started = ran ? time(job.started_at) : undefined;
  const labels = Array.isArray(job.labels) ? job.labels.filter((l): l is string => typeof l === 'string') : [];
  const queue = labels.filter((l) => l.toLowerCase() !== 'self-hosted').join(',') || 'default';
  return {
    id: `github-${String(job.id)}`,
    waitFrom: created,
    ...(started !== undefined ? { started } : {}),
    ended: completed,
    cancelled: job.conclusion === 'cancelled',
    queue,
  };
}

function buildkite(job: Json): Raw | undefined {
  if (job.type !== 'script') return undefined;
  const waitFrom = time(job.runnable_at) ?? time(job.scheduled_at) ?? time(job.created_at);
  const started = time(job.started_at);
  const finished = time(job.finished_at);
  if (waitFrom === undefined || finished === undefined) return undefined;
  const cancelled = job.state === 'canceled' || job.state === 'timed_out';
  if (started === undefined && !cancelled) return undefined;
  const rules = Array.isArray(job.agent_query_rules) ? job.agent_query_rules : [];
  const rule = rules.find((r): r is string => typeof r === 'string' && r.startsWith('queue='));
  return {
    id: `buildkite-${String(job.id)}`,
    waitFrom,
    ...(started !== undefined ? { started } : {}),
    ended: finished,
    cancelled,
    queue: rule?.slice('queue='.length) || 'default',
  };
}

function gitlab(job: Json): Raw | undefined {
  if (!['success', 'failed', 'canceled'].includes(String(job.status))) return undefined;
  const started = time(job.started_at);
  const finished = time(job.finished_at);
  const queued = typeof job.queued_duration === 'number' ? job.queued_duration : undefined;
  const waitFrom = started !== undefined && queued !== undefined ? started - queued * 1000 : time(job.created_at);
  if (waitFrom === undefined || finished === undefined) return undefined;
  if (started === undefined && job.status !== 'canceled') return undefined;
  const tags = Array.isArray(job.tag_list) ? job.tag_list.filter((t): t is string => typeof t === 'string') : [];
  return {
    id: `gitlab-${String(job.id)}`,
    waitFrom,
    ...(started !== undefined ? { started } : {}),
    ended: finished,
    cancelled: job.status === 'canceled',
    queue: tags.join(',') || 'default',
  };
}

/** Which provider's output the documents are, and their job objects. */
function classify(docs: readonly unknown[]): { provider: ReplayProvider; jobs: Json[] } {
  const items = docs.flatMap((d) => (Array.isArray(d) ? d : [d])).filter(isObject);
  // GitHub pages: { total_count, jobs: [...] } whose jobs carry run_id.
  if (items.length > 0 && items.every((i) => Array.isArray(i.jobs) && 'total_count' in i))
    return { provider: 'github', jobs: items.flatMap((i) => (i.jobs as unknown[]).filter(isObject)) };
  if (items.length > 0 && items.every((i) => 'run_id' in i && 'labels' in i))
    return { provider: 'github', jobs: items };
  // Buildkite builds: { number, jobs: [...] }.
  if (items.length > 0 && items.every((i) => Array.isArray(i.jobs) && 'number' in i))
    return { provider: 'buildkite', jobs: items.flatMap((i) => (i.jobs as unknown[]).filter(isObject)) };
  // GitLab jobs: { id, status, stage, tag_list, ... }.
  if (items.length > 0 && items.every((i) => 'tag_list' in i && 'stage' in i))
    return { provider: 'gitlab', jobs: items };
  throw new Error(
    'not a job history this simulator knows: expected GitHub "list jobs for a workflow run" pages, Buildkite builds with their jobs, or GitLab project jobs',
  );
}

/** Parses a provider's job history (see the header for the formats). */
export function parseHistory(text: string): Replay {
  let docs: unknown[];
  try {
    docs = parseDocuments(text);
  } catch (e) {
    throw new Error(`--from: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const { provider, jobs } = classify(docs);
  const read = provider === 'github' ? github : provider === 'buildkite' ? buildkite : gitlab;
  const raws: Raw[] = [];
  const seen = new Set<string>();
  let skipped = 0;
  for (const job of jobs) {
    const r = read(job);
    if (!r || seen.has(r.id)) {
      skipped++;
      continue;
    }
    seen.add(r.id);
    raws.push(r);
  }
  if (raws.length === 0) throw new Error(`--from: no finished ${provider} job that needed an agent in the file`);
  // Not Math.min(...): a history of weeks has more jobs than a call has room for arguments.
  const startMs = raws.reduce((m, r) => Math.min(m, r.waitFrom), Number.POSITIVE_INFINITY);
  const s = (ms: number) => Math.round((ms - startMs) / 100) / 10;
  const trace: TraceJob[] = raws.map((r) => {
    const at = s(r.waitFrom);
    const duration =
      r.started !== undefined && r.ended !== undefined ? Math.max(0, Math.round((r.ended - r.started) / 100) / 10) : 0;
    // Cancelled while waiting: never starts if still waiting then. A run that was cancelled is
    // replayed as a run of the length it had.
    const cancelAt =
      r.cancelled && r.started === undefined && r.ended !== undefined ? Math.max(at, s(r.ended)) : undefined;
    return { id: r.id, at, queue: r.queue, duration, ...(cancelAt !== undefined ? { cancelAt } : {}) };
  });
  trace.sort((a, b) => a.at - b.at || a.id.localeCompare(b.id));
  return { provider, jobs: trace, skipped, startMs };
}

export function readHistory(path: string): Replay {
  return parseHistory(readFileSync(path, 'utf8'));
}
