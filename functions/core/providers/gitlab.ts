/**
 * GitLab Job Hook (`X-Gitlab-Event: Job Hook`), authenticated by `X-Gitlab-Token` compared in
 * constant time. Pure: crypto only.
 *
 * Queue: GitLab's documented Job Hook payload carries no list of the job's own tags (only
 * `runner.tags`, the tags of the runner that picked the job up, absent while it is pending). A
 * top-level `tags` array is used where present; otherwise the job counts for `default`.
 */
import type { JobEventKind } from '../job-event.js';
import {
  BadRequestError,
  constantTimeEqual,
  header,
  idField,
  isObject,
  jobEventResult,
  matchServedQueue,
  optionalString,
  type ParseContext,
  type ProviderModule,
  type ProviderResult,
  parseJsonObject,
  type RawRequest,
  timestampField,
} from './types.js';

/**
 * build_status -> kind; terminal statuses become `cancelled` when the job never started. A Map,
 * not an object literal: a status named `constructor` or `__proto__` must find nothing.
 */
const KINDS: ReadonlyMap<string, JobEventKind> = new Map([
  ['pending', 'scheduled'],
  ['running', 'started'],
  ['success', 'finished'],
  ['failed', 'finished'],
  ['canceled', 'finished'],
  ['skipped', 'finished'],
]);

export const gitlab: ProviderModule = {
  name: 'gitlab',

  secretsFrom(value) {
    return value === '' ? [] : [value];
  },

  async verify(request, secrets) {
    const token = header(request, 'x-gitlab-token');
    if (token === undefined || secrets.length === 0) return false;
    let ok = false;
    for (const secret of secrets) if (constantTimeEqual(token, secret)) ok = true;
    return ok;
  },

  parse(request: RawRequest, context: ParseContext): ProviderResult {
    const name = header(request, 'x-gitlab-event');
    if (name === undefined) throw new BadRequestError('X-Gitlab-Event header is missing');
    if (name !== 'Job Hook') return { kind: 'ignored', reason: `event ${name} is not acted on` };
    const body = parseJsonObject(request.body.toString('utf8'));
    if (body.object_kind !== 'build') throw new BadRequestError('object_kind must be "build" for a Job Hook');
    const jobId = idField(body, 'build_id', 'build_id');
    const status = body.build_status;
    if (typeof status !== 'string') throw new BadRequestError('build_status is missing or not a string');
    const kind = KINDS.get(status);
    if (kind === undefined) return { kind: 'ignored', reason: `build_status ${status} is not acted on` };

    const tags = body.tags ?? [];
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
      throw new BadRequestError('tags must be an array of strings');
    }
    const wanted = tags.length === 0 ? ['default'] : (tags as string[]);
    const queue = matchServedQueue(wanted, context.queues);
    if (queue === undefined)
      return { kind: 'ignored', reason: `tags ${JSON.stringify(wanted)} name no queue served here` };

    const createdAt = timestampField(body.build_created_at, 'build_created_at');
    const startedAt = timestampField(body.build_started_at, 'build_started_at');
    const finishedAt = timestampField(body.build_finished_at, 'build_finished_at');
    const effective: JobEventKind = kind === 'finished' && startedAt === undefined ? 'cancelled' : kind;

    const project = isObject(body.project) ? body.project : {};
    const repository = isObject(body.repository) ? body.repository : {};
    const web = optionalString(project.web_url) ?? optionalString(repository.homepage);
    const trace = {
      repository: optionalString(project.path_with_namespace) ?? optionalString(body.project_name),
      pipeline: optionalString(body.pipeline_id),
      build: optionalString(body.build_name),
      url: web === undefined ? undefined : `${web}/-/jobs/${jobId}`,
    };
    return jobEventResult({
      provider: 'gitlab',
      jobId,
      queue,
      kind: effective,
      times: { scheduledAt: createdAt, startedAt, finishedAt },
      context,
      deliveryId: header(request, 'x-gitlab-event-uuid'),
      trace,
    });
  },
};
