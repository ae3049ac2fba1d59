/**
 * GitHub's "redeliver failed deliveries" recipe as pickRedeliveries applies it, and GitLab's
 * pending jobs as scheduled events (functions/core/providers/recovery.ts). Delivery fields as
 * GitHub's `hook-delivery-item` (@octokit/openapi-types): id, guid, delivered_at, status_code,
 * event, action.
 */
import { describe, expect, it } from 'vitest';
import { eventId } from '../../functions/core/job-event.js';
import { type DeliveryRecord, gitlabPendingEvents, pickRedeliveries } from '../../functions/core/providers/recovery.js';
import { defaultQueueAgents } from '../../functions/core/routing.js';
import { ConfigError, loadScalerConfig } from '../../functions/shared/config.js';

const now = Date.parse('2026-11-23T12:00:00Z');
const at = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toISOString();
let id = 1;
const delivery = (guid: string, statusCode: number, secondsAgo: number, extra: Partial<DeliveryRecord> = {}) => ({
  id: id++,
  guid,
  deliveredAt: at(secondsAgo),
  statusCode,
  event: 'workflow_job',
  action: 'queued',
  ...extra,
});
const options = { now, lookbackMs: 3_600_000, asked: new Map<string, number>(), askAgainMs: 300_000, max: 10 };

describe('pickRedeliveries', () => {
  it('redelivers the latest attempt of an event none of whose deliveries succeeded', () => {
    const a1 = delivery('a', 503, 300);
    const a2 = delivery('a', 0, 200);
    const b1 = delivery('b', 503, 300);
    const b2 = delivery('b', 202, 100);
    expect(pickRedeliveries([a1, a2, b1, b2], options).map((d) => d.id)).toEqual([a2.id]);
  });

  it('leaves refused requests (4xx), other events and deliveries older than the look-back alone', () => {
    const picked = pickRedeliveries(
      [
        delivery('bad-signature', 401, 60),
        delivery('malformed', 400, 60),
        delivery('push', 500, 60, { event: 'push', action: null }),
        delivery('old', 503, 7200),
        delivery('throttled', 429, 60),
        delivery('timeout', 408, 60),
      ],
      options,
    );
    expect(picked.map((d) => d.guid).sort()).toEqual(['throttled', 'timeout']);
  });

  it('asks for a guid once per askAgainMs, queued first, at most max', () => {
    const deliveries = [
      delivery('done', 503, 50, { action: 'completed' }),
      delivery('q1', 503, 40),
      delivery('q2', 503, 30),
      delivery('asked', 503, 20),
    ];
    const asked = new Map([['asked', now - 60_000]]);
    expect(pickRedeliveries(deliveries, { ...options, asked, max: 2 }).map((d) => d.guid)).toEqual(['q1', 'q2']);
    expect(pickRedeliveries(deliveries, { ...options, asked }).map((d) => d.guid)).toEqual(['q1', 'q2', 'done']);
    const later = { ...options, asked, now: now + 300_000 };
    expect(pickRedeliveries(deliveries, later).map((d) => d.guid)).toContain('asked');
  });
});

describe('gitlabPendingEvents', () => {
  const routing = {
    queues: [{ ...defaultQueueAgents('docker', 'gitlab'), runnerTags: ['docker', 'linux'] }],
    buildkiteDefaultQueue: 'default',
  };

  it('a pending job a queue can take is a scheduled event with the id the webhook gives it', () => {
    const events = gitlabPendingEvents(
      '380',
      [
        { id: 1977, status: 'pending', tagList: ['docker'], createdAt: '2026-11-23T11:59:00.000Z', name: 'test' },
        { id: 1978, status: 'pending', tagList: ['gpu'] },
        { id: 1979, status: 'running', tagList: ['docker'] },
      ],
      routing,
      new Date(now),
    );
    expect(events).toEqual([
      {
        id: eventId('gitlab', '1977', 'scheduled'),
        provider: 'gitlab',
        jobId: '1977',
        queue: 'docker',
        gitlabProjectId: '380',
        kind: 'scheduled',
        occurredAt: '2026-11-23T11:59:00.000Z',
        receivedAt: new Date(now).toISOString(),
        trace: { build: 'test' },
      },
    ]);
  });
});

describe('provider reconcile configuration', () => {
  const env = {
    EVENTS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/events',
    LEDGER_TABLE: 'ledger',
    KUBECONFIG: '/tmp/kubeconfig',
  };

  it('defaults to every 120 s; 0 is off; a period under 30 s stops the cold start naming the variable', () => {
    expect(loadScalerConfig(env).providerReconcileSeconds).toBe(120);
    expect(loadScalerConfig({ ...env, PROVIDER_RECONCILE_SECONDS: '0' }).providerReconcileSeconds).toBe(0);
    expect(() => loadScalerConfig({ ...env, PROVIDER_RECONCILE_SECONDS: '5' })).toThrow(
      /^PROVIDER_RECONCILE_SECONDS must be an integer: 0 \(off\) or from 30 to 3600, got "5"$/,
    );
  });

  it('GITLAB_PROJECTS, BUILDKITE_ORGANIZATION with its token, GITHUB_WEBHOOK_ID with the App', () => {
    const c = loadScalerConfig({
      ...env,
      GITLAB_PROJECTS: '380,Group/Project',
      BUILDKITE_ORGANIZATION: 'acme',
      BUILDKITE_API_TOKEN: 'bkua_x',
    });
    expect(c.gitlabProjects).toEqual(['380', 'group/project']);
    expect(c.buildkiteApi).toMatchObject({ organization: 'acme', url: 'https://api.buildkite.com/v2' });
    expect(() => loadScalerConfig({ ...env, BUILDKITE_ORGANIZATION: 'acme' })).toThrow(
      /BUILDKITE_API_TOKEN_PARAMETER \(or BUILDKITE_API_TOKEN\) must be set/,
    );
    expect(() => loadScalerConfig({ ...env, GITHUB_WEBHOOK_ID: '17' })).toThrow(ConfigError);
  });
});
