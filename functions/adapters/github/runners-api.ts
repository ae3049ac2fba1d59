/**
 * GitHub's self-hosted runner REST API, as a GitHub App: just-in-time runner configurations,
 * the runner list and runner deletion, for an organisation or one repository.
 *
 * Authentication is @octokit/auth-app's: an App JWT for the installation lookup
 * (`GET /orgs/{org}/installation` or `GET /repos/{owner}/{repo}/installation`, once per
 * container) and for the installation token (`POST /app/installations/{id}/access_tokens`),
 * which is cached here until five minutes before its `expires_at`. Calls per batch of N agents:
 * N × generate-jitconfig, plus, at most once an hour, one token call.
 *
 * Errors: 429, 5xx, secondary rate limits (403 with `retry-after` or a "rate limit" message,
 * or `x-ratelimit-remaining: 0`) and network errors are GitHubRetryableError; after one, calls
 * fail at once (without reaching GitHub) until the `retry-after` / `x-ratelimit-reset` time has
 * passed (60 s for a secondary limit that names neither, as GitHub asks). Nothing here logs or puts in an
 * error message a token, a key or a JIT configuration.
 */
import { createAppAuth } from '@octokit/auth-app';
import { request as octokitRequest } from '@octokit/request';
import { RequestError } from '@octokit/request-error';
import type { GitHubRunnerOwner } from '../../shared/config.js';

export interface RunnersApiOptions {
  readonly appId: string;
  /** The App's PEM private key (read lazily, e.g. from SSM). */
  readonly privateKey: () => Promise<string>;
  readonly owner: GitHubRunnerOwner;
  readonly apiUrl: string;
  /** Epoch ms (default Date.now): token expiry and the rate-limit cool-down. */
  readonly now?: () => number;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
}

export interface JitRunner {
  readonly runnerId: number;
  readonly name: string;
  /** The single-use runner configuration: a credential, never to be logged. */
  readonly encodedJitConfig: string;
}

export interface RegisteredRunner {
  readonly id: number;
  readonly name: string;
  readonly status: string;
  readonly busy: boolean;
}

export interface JitRequest {
  readonly name: string;
  readonly runnerGroupId: number;
  readonly labels: readonly string[];
  readonly workFolder?: string;
}

/** One delivery of a webhook (GitHub's `hook-delivery-item`), as the reconcile needs it. */
export interface HookDelivery {
  readonly id: number;
  /** Shared by every delivery (and redelivery) of the same event. */
  readonly guid: string;
  readonly deliveredAt: string;
  readonly redelivery: boolean;
  /** The HTTP status our endpoint answered (0: no answer: timeout, connection refused). */
  readonly statusCode: number;
  readonly event: string;
  readonly action: string | null;
}

export interface HookDeliveriesPage {
  readonly deliveries: HookDelivery[];
  /** The `cursor` of the next (older) page, from the Link header; undefined on the last page. */
  readonly next?: string;
}

export interface RunnersApi {
  generateJitConfig(request: JitRequest): Promise<JitRunner>;
  /**
   * One page (newest first) of the deliveries of the organisation's or repository's webhook
   * `hookId` (`GET /orgs/{org}/hooks/{hook_id}/deliveries`, or `/repos/{owner}/{repo}/...`).
   */
  listHookDeliveries?(hookId: number, cursor?: string): Promise<HookDeliveriesPage>;
  /** Asks GitHub to deliver it again (`POST .../deliveries/{delivery_id}/attempts`, 202). */
  redeliver?(hookId: number, deliveryId: number): Promise<void>;
  /** Every runner of the organisation or repository (all pages). */
  listRunners(): Promise<RegisteredRunner[]>;
  /** Deletes a runner; a runner already gone is not an error. */
  deleteRunner(id: number): Promise<void>;
  /** Requests sent to GitHub so far (measurement). */
  readonly requests: number;
}

export class GitHubApiError extends Error {
  readonly retryable: boolean = false;
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'GitHubApiError';
  }
}

/** Worth retrying on a later tick: rate limits, 5xx, timeouts, network errors. */
export class GitHubRetryableError extends GitHubApiError {
  override readonly retryable = true;
  constructor(
    message: string,
    status: number,
    /** Epoch ms before which GitHub should not be called again. */
    readonly retryAt: number,
  ) {
    super(message, status);
    this.name = 'GitHubRetryableError';
  }
}

const TOKEN_MARGIN_MS = 5 * 60_000;
const MIN_COOL_DOWN_MS = 60_000;

type Headers = Record<string, string | number | undefined>;

function header(headers: Headers | undefined, name: string): string | undefined {
  const v = headers?.[name];
  return v === undefined ? undefined : String(v);
}

/** Maps any failure of a GitHub call to GitHubApiError / GitHubRetryableError. */
export function toGitHubError(e: unknown, operation: string, now: number): GitHubApiError {
  if (e instanceof GitHubApiError) return e;
  if (e instanceof RequestError) {
    const headers = e.response?.headers as Headers | undefined;
    const data = e.response?.data as { message?: unknown } | undefined;
    const detail = typeof data?.message === 'string' ? data.message : e.message;
    const message = `${operation}: GitHub answered ${e.status}${detail ? ` (${detail.slice(0, 200)})` : ''}`;
    const retryAfter = Number(header(headers, 'retry-after'));
    const remaining = header(headers, 'x-ratelimit-remaining');
    const reset = Number(header(headers, 'x-ratelimit-reset'));
    const rateLimited =
      e.status === 429 ||
      (e.status === 403 &&
        (Number.isFinite(retryAfter) || remaining === '0' || /rate limit/i.test(String(detail ?? ''))));
    if (rateLimited || e.status >= 500 || e.status === 408 || e.status === 0) {
      // GitHub's rule: retry-after if given, else the reset time when none remain, else (a
      // secondary limit without either) at least one minute.
      let retryAt = now;
      if (Number.isFinite(retryAfter) && retryAfter > 0) retryAt = now + retryAfter * 1000;
      else if (remaining === '0' && Number.isFinite(reset)) retryAt = reset * 1000;
      else if (rateLimited) retryAt = now + MIN_COOL_DOWN_MS;
      return new GitHubRetryableError(message, e.status, retryAt);
    }
    return new GitHubApiError(message, e.status);
  }
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new GitHubRetryableError(`${operation}: ${text.slice(0, 200)}`, 0, now);
}

export function createRunnersApi(options: RunnersApiOptions): RunnersApi {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const base = octokitRequest.defaults({
    baseUrl: options.apiUrl,
    headers: { 'x-github-api-version': '2022-11-28', 'user-agent': 'ci-agent-autoscaler' },
  });
  let requests = 0;
  // Every request goes through here: counted, with a timeout.
  const request = base.defaults({
    request: {
      hook: (next: typeof base, endpoint: Record<string, unknown>) => {
        requests++;
        const withTimeout = {
          ...endpoint,
          request: { ...(endpoint.request as object), signal: AbortSignal.timeout(timeoutMs) },
        };
        return next(withTimeout as unknown as Parameters<typeof base>[0]);
      },
    },
  });

  const { owner } = options;
  const scope = owner.kind === 'org' ? `/orgs/${encodeURIComponent(owner.org)}` : `/repos/${owner.owner}/${owner.repo}`;

  let appAuth: Promise<ReturnType<typeof createAppAuth>> | undefined;
  const auth = () => {
    appAuth ??= options.privateKey().then((privateKey) => createAppAuth({ appId: options.appId, privateKey, request }));
    appAuth.catch(() => {
      appAuth = undefined;
    });
    return appAuth;
  };
  let installationId: number | undefined;
  let token: { value: string; expiresAt: number } | undefined;
  let tokenInFlight: Promise<string> | undefined;
  let coolDownUntil = 0;

  async function installationToken(): Promise<string> {
    if (token && now() < token.expiresAt - TOKEN_MARGIN_MS) return token.value;
    tokenInFlight ??= (async () => {
      const a = await auth();
      if (installationId === undefined) {
        const { token: jwt } = await a({ type: 'app' });
        const res = await request(`GET ${scope}/installation`, { headers: { authorization: `bearer ${jwt}` } });
        installationId = (res.data as { id: number }).id;
      }
      const t = await a({ type: 'installation', installationId, refresh: true });
      const expiresAt = new Date(t.expiresAt).getTime();
      token = { value: t.token, expiresAt: Number.isNaN(expiresAt) ? now() + 55 * 60_000 : expiresAt };
      return t.token;
    })().finally(() => {
      tokenInFlight = undefined;
    });
    return tokenInFlight;
  }

  async function call<T>(operation: string, fn: (authorization: string) => Promise<T>): Promise<T> {
    if (now() < coolDownUntil)
      throw new GitHubRetryableError(
        `${operation}: GitHub asked to wait until ${new Date(coolDownUntil).toISOString()}`,
        429,
        coolDownUntil,
      );
    try {
      return await fn(`token ${await installationToken()}`);
    } catch (e) {
      const err = toGitHubError(e, operation, now());
      if (err.status === 401) {
        // The installation was removed or the token revoked: look both up again next time.
        token = undefined;
        installationId = undefined;
      }
      if (err instanceof GitHubRetryableError && err.retryAt > now()) coolDownUntil = err.retryAt;
      throw err;
    }
  }

  return {
    get requests() {
      return requests;
    },

    generateJitConfig(r) {
      return call(`generate-jitconfig ${r.name}`, async (authorization) => {
        const res = await request(`POST ${scope}/actions/runners/generate-jitconfig`, {
          headers: { authorization },
          name: r.name,
          runner_group_id: r.runnerGroupId,
          labels: [...r.labels],
          work_folder: r.workFolder ?? '_work',
        });
        const data = res.data as { runner?: { id?: unknown; name?: unknown }; encoded_jit_config?: unknown };
        if (typeof data.encoded_jit_config !== 'string' || typeof data.runner?.id !== 'number')
          throw new GitHubApiError(
            `generate-jitconfig ${r.name}: response without runner.id or encoded_jit_config`,
            502,
          );
        return {
          runnerId: data.runner.id,
          name: typeof data.runner.name === 'string' ? data.runner.name : r.name,
          encodedJitConfig: data.encoded_jit_config,
        };
      });
    },

    listRunners() {
      return call('list runners', async (authorization) => {
        const runners: RegisteredRunner[] = [];
        for (let page = 1; page <= 100; page++) {
          const res = await request(`GET ${scope}/actions/runners`, {
            headers: { authorization },
            per_page: 100,
            page,
          });
          const data = res.data as { total_count?: number; runners?: RegisteredRunner[] };
          const items = data.runners ?? [];
          runners.push(...items.map((x) => ({ id: x.id, name: x.name, status: x.status, busy: x.busy })));
          if (items.length < 100 || runners.length >= (data.total_count ?? 0)) break;
        }
        return runners;
      });
    },

    listHookDeliveries(hookId, cursor) {
      return call(`list deliveries of hook ${hookId}`, async (authorization) => {
        const res = await request(`GET ${scope}/hooks/{hook_id}/deliveries`, {
          headers: { authorization },
          hook_id: hookId,
          per_page: 100,
          ...(cursor === undefined ? {} : { cursor }),
        });
        const items = Array.isArray(res.data) ? (res.data as Record<string, unknown>[]) : [];
        const deliveries = items.flatMap((d): HookDelivery[] =>
          typeof d.id === 'number' && typeof d.guid === 'string'
            ? [
                {
                  id: d.id,
                  guid: d.guid,
                  deliveredAt: typeof d.delivered_at === 'string' ? d.delivered_at : '',
                  redelivery: d.redelivery === true,
                  statusCode: typeof d.status_code === 'number' ? d.status_code : 0,
                  event: typeof d.event === 'string' ? d.event : '',
                  action: typeof d.action === 'string' ? d.action : null,
                },
              ]
            : [],
        );
        const link = header(res.headers as Headers, 'link') ?? '';
        const nextUrl = /<([^>]+)>;\s*rel="next"/.exec(link)?.[1];
        const next = nextUrl ? (new URL(nextUrl).searchParams.get('cursor') ?? undefined) : undefined;
        return { deliveries, ...(next ? { next } : {}) };
      });
    },

    async redeliver(hookId, deliveryId) {
      await call(`redeliver delivery ${deliveryId} of hook ${hookId}`, (authorization) =>
        request(`POST ${scope}/hooks/{hook_id}/deliveries/{delivery_id}/attempts`, {
          headers: { authorization },
          hook_id: hookId,
          delivery_id: deliveryId,
        }),
      );
    },

    async deleteRunner(id) {
      try {
        await call(`delete runner ${id}`, (authorization) =>
          request(`DELETE ${scope}/actions/runners/{runner_id}`, { headers: { authorization }, runner_id: id }),
        );
      } catch (e) {
        if (e instanceof GitHubApiError && e.status === 404) return;
        throw e;
      }
    },
  };
}
