/**
 * Signed webhook deliveries as the three CI providers send them (headers, payload shape and
 * signature scheme), for the local stack's simulated CI, `npm run demo`, the end-to-end benchmark
 * and the local-stack test. The payloads carry the fields our providers' parsers read (and a few
 * more for realism), and nothing a provider does not send (a GitLab Job Hook has no job tags);
 * the signatures are the providers' real schemes:
 *  - Buildkite: `X-Buildkite-Signature: timestamp=T,signature=hex(HMAC-SHA256(secret, "T.body"))`
 *  - GitHub: `X-Hub-Signature-256: sha256=hex(HMAC-SHA256(secret, body))`
 *  - GitLab: the shared `X-Gitlab-Token`
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { PROVIDERS, type Provider } from '../../functions/core/job-event.js';
import { buildkiteSignature } from '../../functions/core/providers/buildkite.js';
import { descriptorOf } from '../../functions/core/providers/registry.js';

export type Transition = 'scheduled' | 'started' | 'finished';

/** One webhook secret per provider. */
export type LocalSecrets = Readonly<Record<Provider, string>>;

const perProvider = <T>(value: (p: Provider) => T): Record<Provider, T> =>
  Object.fromEntries(PROVIDERS.map((p) => [p, value(p)])) as Record<Provider, T>;

/**
 * New random webhook secrets, one set per local stack start: a stack exposed through a tunnel is
 * never guarded by a secret published in this repository. The banner and the run record show them.
 */
export function randomLocalSecrets(): LocalSecrets {
  return perProvider(() => randomBytes(18).toString('base64url'));
}

/** The variable holding each provider's plain webhook secret (its descriptor's secretVariable). */
export const SECRET_VARIABLES: Readonly<Record<Provider, string>> = perProvider((p) => descriptorOf(p).secretVariable);

/**
 * The secrets to sign local deliveries with: each provider's variable in `env`, read as the
 * webhook reads it (trimmed; GitHub's first of its comma-separated secrets), else `fallback`'s.
 */
export function localSigningSecrets(
  env: Readonly<Record<string, string | undefined>>,
  fallback: LocalSecrets,
): LocalSecrets {
  return perProvider(
    (p) => descriptorOf(p).webhook.secretsFrom(env[SECRET_VARIABLES[p]]?.trim() ?? '')[0] ?? fallback[p],
  );
}

export interface CiJob {
  readonly provider: Provider;
  /** Buildkite: a UUID; GitHub, GitLab: a number (as a string). */
  readonly jobId: string;
  readonly queue: string;
  readonly name?: string;
}

export interface WebhookDelivery {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

let nextNumericId = Date.now() % 1_000_000_000;

/** A new CI job with an id in the provider's format. */
export function newCiJob(provider: Provider, queue: string, name = 'test'): CiJob {
  return { provider, jobId: LOCAL_DELIVERY[provider].newJobId(), queue, name };
}

const bkTime = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, ' UTC');
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export interface TransitionTimes {
  /** Epoch ms; default now for the transition's own time. */
  readonly scheduledAt?: number | undefined;
  readonly startedAt?: number | undefined;
  readonly finishedAt?: number | undefined;
}

/** What one transition of a CI job looks like: its times resolved (epoch ms). */
interface TransitionAt {
  readonly job: CiJob;
  readonly transition: Transition;
  readonly scheduledAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  /** When it is sent (epoch ms). */
  readonly now: number;
}

/** How the local stack makes one provider's CI jobs and signs their webhooks. */
export interface LocalDelivery {
  /** A new job id in the provider's format. */
  newJobId(): string;
  /** The signed request the provider sends for a transition, signed with `secret`. */
  deliver(at: TransitionAt, secret: string): WebhookDelivery;
}

/** The signed HTTP delivery the provider sends when `job` makes `transition`. */
export function delivery(
  job: CiJob,
  transition: Transition,
  secrets: LocalSecrets,
  times: TransitionTimes = {},
  now = Date.now(),
): WebhookDelivery {
  const scheduledAt = times.scheduledAt ?? now;
  const startedAt = transition === 'scheduled' ? undefined : (times.startedAt ?? now);
  const finishedAt = transition === 'finished' ? (times.finishedAt ?? now) : undefined;
  const at = { job, transition, scheduledAt, startedAt, finishedAt, now };
  return LOCAL_DELIVERY[job.provider].deliver(at, secrets[job.provider]);
}

/** Each provider's word for a transition: Buildkite `job.state`, GitHub `action` and `status`, GitLab `build_status`. */
const BUILDKITE_STATE = { scheduled: 'scheduled', started: 'running', finished: 'passed' } as const;
const GITHUB_ACTION = { scheduled: 'queued', started: 'in_progress', finished: 'completed' } as const;
const GITLAB_STATUS = { scheduled: 'pending', started: 'running', finished: 'success' } as const;

/** A JSON POST as a provider sends it. */
function jsonPost(path: string, body: string, headers: Record<string, string>): WebhookDelivery {
  return { path, headers: { 'content-type': 'application/json', ...headers }, body };
}

/** The next job id of a provider numbering its jobs (GitHub, GitLab). */
const numericJobId = () => String(++nextNumericId);

const buildkiteDelivery: LocalDelivery = {
  newJobId: () => randomUUID(),
  deliver({ job, transition, scheduledAt, startedAt, finishedAt, now }, secret) {
    const body = JSON.stringify({
      event: `job.${transition}`,
      job: {
        id: job.jobId,
        type: 'script',
        name: job.name ?? ':hammer: build',
        step_key: 'build',
        agent_query_rules: [`queue=${job.queue}`],
        state: BUILDKITE_STATE[transition],
        web_url: `https://buildkite.com/acme/widgets/builds/42#${job.jobId}`,
        command: 'make test',
        exit_status: transition === 'finished' ? 0 : null,
        created_at: bkTime(scheduledAt),
        scheduled_at: bkTime(scheduledAt),
        runnable_at: bkTime(scheduledAt),
        started_at: startedAt === undefined ? null : bkTime(startedAt),
        finished_at: finishedAt === undefined ? null : bkTime(finishedAt),
      },
      build: {
        id: '0190a4b7-0000-4000-8000-000000000042',
        number: 42,
        branch: 'main',
        web_url: 'https://buildkite.com/acme/widgets/builds/42',
      },
      pipeline: { slug: 'widgets', name: 'Widgets', repository: 'git@github.com:acme/widgets.git' },
      sender: { id: '8a7693f8-dbae-4783-9137-84090fce9045', name: 'Local Demo' },
    });
    const timestamp = String(Math.floor(now / 1000));
    const signature = buildkiteSignature(secret, timestamp, body);
    return jsonPost('/webhooks/buildkite', body, {
      'x-buildkite-event': `job.${transition}`,
      'x-buildkite-signature': `timestamp=${timestamp},signature=${signature}`,
      'user-agent': 'Buildkite-Request',
    });
  },
};

const githubDelivery: LocalDelivery = {
  newJobId: numericJobId,
  deliver({ job, transition, scheduledAt, startedAt, finishedAt }, secret) {
    const body = JSON.stringify({
      action: GITHUB_ACTION[transition],
      workflow_job: {
        id: Number(job.jobId),
        run_id: 5_000_000_000 + (Number(job.jobId) % 1000),
        run_attempt: 1,
        workflow_name: 'CI',
        name: job.name ?? 'test',
        head_branch: 'main',
        status: GITHUB_ACTION[transition],
        conclusion: transition === 'finished' ? 'success' : null,
        created_at: iso(scheduledAt),
        started_at: iso(startedAt ?? scheduledAt),
        completed_at: finishedAt === undefined ? null : iso(finishedAt),
        // runs-on: [self-hosted, linux, <queue>]: labels the queue's runners carry by default.
        labels: ['self-hosted', 'linux', job.queue],
        runner_id: transition === 'scheduled' ? null : 42,
        runner_name: transition === 'scheduled' ? null : 'local-agent',
        steps:
          transition === 'scheduled'
            ? []
            : [
                {
                  name: 'Run tests',
                  status: transition === 'finished' ? 'completed' : 'in_progress',
                  number: 1,
                  started_at: iso(startedAt ?? scheduledAt),
                },
              ],
        html_url: `https://github.com/acme/widgets/actions/runs/1/job/${job.jobId}`,
      },
      repository: { full_name: 'acme/widgets', name: 'widgets' },
      sender: { login: 'local-demo', type: 'User' },
    });
    return jsonPost('/webhooks/github', body, {
      'x-github-event': 'workflow_job',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      'user-agent': 'GitHub-Hookshot/local',
    });
  },
};

const gitlabDelivery: LocalDelivery = {
  newJobId: numericJobId,
  deliver({ job, transition, scheduledAt, startedAt, finishedAt }, secret) {
    const body = JSON.stringify({
      object_kind: 'build',
      ref: 'main',
      tag: false,
      sha: '2293ada6b400935a1378653304eaf6221e0fdb8f',
      build_id: Number(job.jobId),
      build_name: job.name ?? 'test',
      build_stage: 'test',
      build_status: GITLAB_STATUS[transition],
      build_created_at: bkTime(scheduledAt),
      build_started_at: startedAt === undefined ? null : bkTime(startedAt),
      build_finished_at: finishedAt === undefined ? null : bkTime(finishedAt),
      build_allow_failure: false,
      pipeline_id: 2366,
      // No job tags: GitLab's Job Hook has none (lib/gitlab/data_builder/build.rb); the
      // scaler looks them up in the (local, fake) GitLab API. `runner` is the runner that took
      // the job, null while pending.
      runner:
        transition === 'scheduled'
          ? null
          : {
              id: 380,
              description: 'local-agent',
              runner_type: 'project_type',
              active: true,
              is_shared: false,
              tags: [job.queue],
            },
      project_id: 380,
      project_name: 'Acme / Widgets',
      project: {
        id: 380,
        name: 'Widgets',
        web_url: 'http://gitlab.example.com/acme/widgets',
        path_with_namespace: 'acme/widgets',
      },
      repository: { name: 'widgets', homepage: 'http://gitlab.example.com/acme/widgets' },
    });
    return jsonPost('/webhooks/gitlab', body, {
      'x-gitlab-event': 'Job Hook',
      'x-gitlab-token': secret,
      'x-gitlab-event-uuid': randomUUID(),
      'user-agent': 'GitLab/local',
    });
  },
};

/** The local stack's delivery of each provider: a Record over the Provider union (compiler-checked). */
export const LOCAL_DELIVERY = {
  buildkite: buildkiteDelivery,
  github: githubDelivery,
  gitlab: gitlabDelivery,
} as const satisfies Readonly<Record<Provider, LocalDelivery>>;

export interface PostResult {
  readonly status: number;
  readonly body: string;
}

/** A keep-alive agent so a burst does not open one connection per delivery. */
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** POSTs a delivery to `baseUrl` (e.g. http://127.0.0.1:3000). */
export function post(baseUrl: string, d: WebhookDelivery, timeoutMs = 10_000): Promise<PostResult> {
  const url = new URL(d.path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: keepAlive,
        headers: { ...d.headers, 'content-length': String(Buffer.byteLength(d.body)) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url.href} timed out`)));
    req.on('error', reject);
    req.end(d.body);
  });
}

/** Closes idle keep-alive sockets (so a CLI can exit promptly). */
export function closeConnections(): void {
  keepAlive.destroy();
}
