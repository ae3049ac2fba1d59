/**
 * GitLab Job Hook (`X-Gitlab-Event: Job Hook`), authenticated by `X-Gitlab-Token` compared in
 * constant time. Pure: crypto only.
 *
 * Queue: the Job Hook carries no list of the job's own tags (lib/gitlab/data_builder/build.rb
 * sends only `runner.tags`, the tags of the runner that took the job, and `runner` is null while
 * the job is pending; neither the older nor the current build.rb sends the job's own tags, and
 * gitlab MR 140760, which proposed it, is not in them). So the event leaves here
 * without a queue, with its project id, and the scaler looks the job's `tag_list` up once per
 * CI job (functions/scaler/gitlab-routes.ts) before it is counted anywhere.
 */
import type { JobEventKind } from '../job-event.js';
import { routeGitlab, servesProvider } from '../routing.js';
import type { ProviderDescriptor } from './descriptor.js';
import { agentQueue, gitlabOutOfScope } from './scope.js';
import {
  BadRequestError,
  constantTimeEqual,
  header,
  idField,
  isObject,
  jobEventResult,
  optionalString,
  type ParseContext,
  type ProviderModule,
  type ProviderResult,
  parseJsonObject,
  type RawRequest,
  routingOf,
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

    if (!servesProvider('gitlab', routingOf(context))) {
      return { kind: 'ignored', reason: 'no queue served here runs gitlab agents' };
    }
    const projectId = body.project_id;
    // A number, as build.rb sends it (`project_id: build.project_id`): a signed payload carrying
    // anything else (a UUID, `hasOwnProperty`, 0) names no project the jobs API could be asked about.
    if (typeof projectId !== 'number' || !Number.isSafeInteger(projectId) || projectId < 1) {
      throw new BadRequestError(
        `project_id must be a positive integer, got ${JSON.stringify(projectId)?.slice(0, 40)}`,
      );
    }
    const gitlabProjectId = String(projectId);
    const project = isObject(body.project) ? body.project : {};
    const outOfScope = gitlabOutOfScope(gitlabProjectId, optionalString(project.path_with_namespace), context.scope);
    if (outOfScope !== undefined) return { kind: 'ignored', reason: outOfScope };
    // The runner that took the job (running, success, failed, ...): `runner` is null while the
    // job is pending; once set it names the runner (description) and carries its tags. A job
    // taken by one of our queues' runners counts in that queue, whatever its own tags.
    const runner = isObject(body.runner) ? body.runner : undefined;
    const runnerTags =
      runner && Array.isArray(runner.tags) && runner.tags.every((t) => typeof t === 'string')
        ? (runner.tags as string[])
        : undefined;
    const ran = runner
      ? agentQueue(gitlabProvider, { name: optionalString(runner.description), tags: runnerTags }, routingOf(context))
      : undefined;

    const createdAt = timestampField(body.build_created_at, 'build_created_at');
    const startedAt = timestampField(body.build_started_at, 'build_started_at');
    const finishedAt = timestampField(body.build_finished_at, 'build_finished_at');
    const effective: JobEventKind = kind === 'finished' && startedAt === undefined ? 'cancelled' : kind;

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
      queue: ran,
      gitlabProjectId,
      kind: effective,
      times: { scheduledAt: createdAt, startedAt, finishedAt },
      context,
      deliveryId: header(request, 'x-gitlab-event-uuid'),
      trace,
    });
  },
};

/** The GitLab descriptor (registry.ts). */
export const gitlabProvider = {
  name: 'gitlab',
  title: 'GitLab',
  webhook: gitlab,
  route: routeGitlab,
  agentTags: 'runnerTags',
  overrideKeys: ['runnerTags', 'runUntagged', 'runnerTokenSecret'],
  template: 'gitlab',
  secretVariable: 'GITLAB_WEBHOOK_TOKEN',
  deliveryIdHeader: 'x-gitlab-event-uuid',
} as const satisfies ProviderDescriptor<'gitlab'>;
