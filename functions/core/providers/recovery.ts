/**
 * Recovering CI jobs whose webhook delivery was lost, from the providers' own records. Pure: no
 * I/O (the adapters fetch, functions/scaler/provider-reconcile.ts runs it once per period).
 *
 *  - GitHub does not redeliver a failed delivery ("Handling failed webhook deliveries"); its
 *    documented recipe lists the hook's deliveries, and asks again for each event (guid) none of
 *    whose deliveries succeeded. pickRedeliveries is that recipe, bounded: `workflow_job` events
 *    only, only failures worth repeating (no answer, 408, 429, 5xx: a 4xx from us means the
 *    request itself was refused and would be again), `queued` first, at most `max` per run, and
 *    not a guid asked for within `askAgainMs` (the redelivery may still be on its way).
 *  - GitLab does not retry a failed delivery: its pending jobs (`GET /projects/:id/jobs?scope[]=
 *    pending`, with their `tag_list`) become `scheduled` events, routed by their tags as the
 *    drain would (gitlabPendingEvents).
 * A recovered event has the id the webhook would have given it (eventId of provider, job and
 * kind), so a delivery that arrives after all, or a second recovery, is a no-op in the ledger:
 * nothing is provisioned twice.
 */
import { eventId, JOB_ID_PATTERN, type JobEvent } from '../job-event.js';
import { type Routing, routeBuildkite, routeGitlab } from '../routing.js';

export interface DeliveryRecord {
  readonly id: number;
  readonly guid: string;
  readonly deliveredAt: string;
  readonly statusCode: number;
  readonly event: string;
  readonly action: string | null;
}

const ok = (status: number) => status >= 200 && status < 300;
const worthRepeating = (status: number) => status === 0 || status === 408 || status === 429 || status >= 500;

/**
 * The deliveries to ask GitHub to redeliver (the latest attempt of each lost event), given the
 * deliveries listed (any order) and when each guid was last asked for.
 */
export function pickRedeliveries(
  deliveries: readonly DeliveryRecord[],
  options: {
    readonly now: number;
    readonly lookbackMs: number;
    readonly asked: ReadonlyMap<string, number>;
    readonly askAgainMs: number;
    readonly max: number;
  },
): DeliveryRecord[] {
  const since = options.now - options.lookbackMs;
  const byGuid = new Map<string, DeliveryRecord[]>();
  for (const d of deliveries) {
    if (d.event !== 'workflow_job') continue;
    const at = Date.parse(d.deliveredAt);
    if (!Number.isFinite(at) || at < since) continue;
    const list = byGuid.get(d.guid) ?? [];
    list.push(d);
    byGuid.set(d.guid, list);
  }
  const lost: DeliveryRecord[] = [];
  for (const [guid, attempts] of byGuid) {
    if (attempts.some((a) => ok(a.statusCode))) continue;
    if (!attempts.every((a) => worthRepeating(a.statusCode))) continue;
    const askedAt = options.asked.get(guid);
    if (askedAt !== undefined && options.now - askedAt < options.askAgainMs) continue;
    const latest = attempts.reduce((a, b) => (Date.parse(b.deliveredAt) > Date.parse(a.deliveredAt) ? b : a));
    lost.push(latest);
  }
  // `queued` first (a job waiting for an agent), then the oldest first.
  const rank = (d: DeliveryRecord) => (d.action === 'queued' ? 0 : 1);
  lost.sort((a, b) => rank(a) - rank(b) || Date.parse(a.deliveredAt) - Date.parse(b.deliveredAt));
  return lost.slice(0, Math.max(0, options.max));
}

/** A pending job as GitLab's jobs list answers it (the fields read here). */
export interface GitlabPendingJob {
  readonly id: number;
  readonly status: string;
  readonly tagList: readonly string[];
  readonly createdAt?: string;
  readonly name?: string;
  readonly webUrl?: string;
  readonly pipelineId?: number;
}

/** `scheduled` events of a served project's pending jobs that one of our queues can take. */
export function gitlabPendingEvents(
  projectId: string,
  jobs: readonly GitlabPendingJob[],
  routing: Routing,
  now: Date,
): JobEvent[] {
  const events: JobEvent[] = [];
  for (const job of jobs) {
    const jobId = String(job.id);
    if (job.status !== 'pending' || !JOB_ID_PATTERN.test(jobId) || !JOB_ID_PATTERN.test(projectId)) continue;
    const routed = routeGitlab(job.tagList, routing);
    if ('unmet' in routed) continue;
    const created = job.createdAt === undefined ? Number.NaN : Date.parse(job.createdAt);
    const occurredAt = Number.isFinite(created) ? new Date(created).toISOString() : now.toISOString();
    events.push({
      id: eventId('gitlab', jobId, 'scheduled'),
      provider: 'gitlab',
      jobId,
      queue: routed.queue,
      gitlabProjectId: projectId,
      kind: 'scheduled',
      occurredAt,
      receivedAt: now.toISOString(),
      trace: {
        ...(job.name ? { build: job.name.slice(0, 512) } : {}),
        ...(job.pipelineId === undefined ? {} : { pipeline: String(job.pipelineId) }),
        ...(job.webUrl ? { url: job.webUrl.slice(0, 512) } : {}),
      },
    });
  }
  return events;
}

/** A job of a scheduled or running Buildkite build, still waiting for an agent. */
export interface BuildkiteScheduledJob {
  readonly id: string;
  readonly agentQueryRules: readonly string[];
  readonly clusterId?: string;
  readonly scheduledAt?: string;
  readonly webUrl?: string;
  readonly pipeline?: string;
  readonly build?: string;
}

/** `scheduled` events of the jobs one of our queues can take (in our clusters, if any are named). */
export function buildkiteScheduledEvents(
  jobs: readonly BuildkiteScheduledJob[],
  routing: Routing,
  clusters: readonly string[] | undefined,
  now: Date,
): JobEvent[] {
  const events: JobEvent[] = [];
  for (const job of jobs) {
    if (!JOB_ID_PATTERN.test(job.id)) continue;
    if (clusters !== undefined && (job.clusterId === undefined || !clusters.includes(job.clusterId.toLowerCase())))
      continue;
    const routed = routeBuildkite(job.agentQueryRules, routing);
    if ('unmet' in routed) continue;
    const scheduled = job.scheduledAt === undefined ? Number.NaN : Date.parse(job.scheduledAt.replace(' UTC', 'Z'));
    events.push({
      id: eventId('buildkite', job.id, 'scheduled'),
      provider: 'buildkite',
      jobId: job.id,
      queue: routed.queue,
      kind: 'scheduled',
      occurredAt: Number.isFinite(scheduled) ? new Date(scheduled).toISOString() : now.toISOString(),
      receivedAt: now.toISOString(),
      trace: {
        ...(job.pipeline ? { pipeline: job.pipeline.slice(0, 512) } : {}),
        ...(job.build ? { build: job.build } : {}),
        ...(job.webUrl ? { url: job.webUrl.slice(0, 512) } : {}),
      },
    });
  }
  return events;
}
