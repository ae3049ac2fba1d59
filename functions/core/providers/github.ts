/**
 * GitHub Actions `workflow_job` webhooks. Authenticated by `X-Hub-Signature-256` (HMAC-SHA256 of
 * the raw body, checked with @octokit/webhooks-methods against every configured secret, so a
 * secret can be rotated by configuring old and new at once). JSON or form-encoded (`payload=`)
 * bodies. Pure: crypto only.
 */
import { verify as verifySignature } from '@octokit/webhooks-methods';
import type { JobEventKind } from '../job-event.js';
import { routeGithub } from '../routing.js';
import type { ProviderDescriptor } from './descriptor.js';
import { agentQueue, githubOutOfScope } from './scope.js';
import {
  BadRequestError,
  header,
  idField,
  isObject,
  type JsonObject,
  jobEventResult,
  objectField,
  optionalString,
  type ParseContext,
  type ProviderModule,
  type ProviderResult,
  parseJsonObject,
  type RawRequest,
  routingOf,
  timestampField,
} from './types.js';

// A Map, not an object literal: an action named `constructor` or `__proto__` must find nothing.
const KINDS: ReadonlyMap<string, JobEventKind> = new Map([
  ['queued', 'scheduled'],
  ['in_progress', 'started'],
  ['completed', 'finished'],
]);

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/** The JSON payload of a JSON or `application/x-www-form-urlencoded` (`payload=`) delivery. */
function payloadText(request: RawRequest): string {
  const text = request.body.toString('utf8');
  const [mediaType = ''] = (header(request, 'content-type') ?? '').split(';');
  const type = mediaType.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return text;
  const payload = new URLSearchParams(text).get('payload');
  if (payload === null) throw new BadRequestError('form-encoded body has no payload field');
  return payload;
}

/** A completed job never ran when no runner took it or none of its steps started. */
function neverStarted(job: JsonObject): boolean {
  const runner = job.runner_id;
  if (runner === null || runner === undefined || runner === 0) return true;
  const steps = Array.isArray(job.steps) ? job.steps : [];
  return !steps.some((s) => isObject(s) && s.status !== 'queued' && s.started_at != null);
}

export const github: ProviderModule = {
  name: 'github',

  secretsFrom(value) {
    return value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  },

  async verify(request, secrets) {
    const signature = header(request, 'x-hub-signature-256');
    if (signature === undefined || !SIGNATURE.test(signature) || secrets.length === 0) return false;
    const payload = request.body.toString('utf8');
    // The HMAC is computed over the string's UTF-8 bytes: only bodies that round-trip exactly
    // are the bytes GitHub signed.
    if (payload === '' || Buffer.byteLength(payload, 'utf8') !== request.body.length) return false;
    let ok = false;
    for (const secret of secrets) if (await verifySignature(secret, payload, signature)) ok = true;
    return ok;
  },

  parse(request: RawRequest, context: ParseContext): ProviderResult {
    const name = header(request, 'x-github-event');
    if (name === undefined) throw new BadRequestError('X-GitHub-Event header is missing');
    if (name !== 'workflow_job') return { kind: 'ignored', reason: `event ${name} is not acted on` };
    const body = parseJsonObject(payloadText(request));
    const action = body.action;
    if (typeof action !== 'string') throw new BadRequestError('action is missing or not a string');
    const job = objectField(body, 'workflow_job', 'workflow_job');
    const jobId = idField(job, 'id', 'workflow_job.id');
    const kind = KINDS.get(action);
    // `waiting` (for an environment approval or a concurrency group) is not runnable: GitHub
    // sends `queued` again once it is. A queued delivery whose job status is still `waiting`
    // is the same situation.
    if (kind === undefined) return { kind: 'ignored', reason: `action ${action} is not acted on` };
    if (kind === 'scheduled' && job.status === 'waiting') {
      return { kind: 'ignored', reason: 'job is waiting, not runnable yet' };
    }
    const labels = job.labels;
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string')) {
      throw new BadRequestError('workflow_job.labels must be an array of strings');
    }
    const repository = isObject(body.repository) ? body.repository : {};
    const outOfScope = githubOutOfScope(optionalString(repository.full_name), context.scope);
    if (outOfScope !== undefined) return { kind: 'ignored', reason: outOfScope };
    const routing = routingOf(context);
    // The runner that took the job (in_progress, completed): count the job in ITS queue. GitHub
    // gives a job to any runner whose labels cover `runs-on`, not only to the queue it was
    // counted in when queued.
    const ran = agentQueue(githubProvider, { name: optionalString(job.runner_name) }, routing);
    let queue: string;
    if (ran !== undefined) {
      queue = ran;
    } else if (labels.length === 0) {
      // `runs-on: {group: X}` alone arrives with no labels: any runner of group X may take it,
      // and nothing in the payload says which group, so it is no queue's to count.
      return { kind: 'ignored', reason: 'runs-on names no label (a runner group only): no queue can be matched' };
    } else {
      // GitHub gives a job only to a runner that has every one of its `runs-on` labels.
      const routed = routeGithub(labels as string[], routing);
      if ('unmet' in routed) return { kind: 'ignored', reason: routed.unmet };
      queue = routed.queue;
    }

    const conclusion = job.conclusion;
    const effective: JobEventKind =
      kind === 'finished' && (conclusion === 'cancelled' || conclusion === 'skipped') && neverStarted(job)
        ? 'cancelled'
        : kind;
    const createdAt = timestampField(job.created_at, 'workflow_job.created_at');
    const startedAt = timestampField(job.started_at, 'workflow_job.started_at');
    const completedAt = timestampField(job.completed_at, 'workflow_job.completed_at');

    const runId = optionalString(job.run_id);
    const attempt = optionalString(job.run_attempt);
    const trace = {
      repository: optionalString(repository.full_name),
      pipeline: optionalString(job.workflow_name),
      run: runId === undefined ? undefined : attempt === undefined ? runId : `${runId}/${attempt}`,
      url: optionalString(job.html_url),
    };
    return jobEventResult({
      provider: 'github',
      jobId,
      queue,
      kind: effective,
      times: { scheduledAt: createdAt ?? startedAt, startedAt, finishedAt: completedAt },
      context,
      deliveryId: header(request, 'x-github-delivery'),
      trace,
    });
  },
};

/** The GitHub Actions descriptor (registry.ts). */
export const githubProvider = {
  name: 'github',
  title: 'GitHub Actions',
  webhook: github,
  route: routeGithub,
  agentTags: 'runnerLabels',
  overrideKeys: ['runnerLabels'],
  template: 'github',
  secretVariable: 'GITHUB_WEBHOOK_SECRET',
  deliveryIdHeader: 'x-github-delivery',
} as const satisfies ProviderDescriptor<'github'>;
