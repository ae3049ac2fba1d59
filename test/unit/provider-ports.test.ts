/**
 * The scaler's per-provider ports (functions/scaler/provider-ports.ts): a queue's Jobs get the
 * hooks of its provider only, the once-per-tick steps ask every provider, and each router is
 * asked about its own provider's events only, in the batch's order.
 */
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { QueuedJobEvent } from '../../functions/core/job-event.js';
import type { DispatchHooks, EventRouter, ScalerPorts } from '../../functions/scaler/ports.js';
import { allHooks, hooksFor, podsToSweep, routeEvents } from '../../functions/scaler/provider-ports.js';
import { jobEvent } from '../support/job-events.js';

/** Hooks that answer with their own name where they can. */
function hooks(name: string, sweep?: string[]): DispatchHooks {
  return {
    beforeCreate: async (_d, job) => ({ ...job, metadata: { name } }),
    afterCreate: async () => undefined,
    ...(sweep ? { podsToSweep: () => sweep } : {}),
  };
}

const ports = (parts: Partial<ScalerPorts>) => parts as ScalerPorts;

/** An event whose queue its provider's router must find. */
const unrouted = (provider: 'github' | 'gitlab', jobId: string): QueuedJobEvent => {
  const { queue: _q, ...event } = jobEvent(jobId, 'scheduled', { provider });
  return event;
};

/** A router that routes each event to `<provider>-q` and records what it was asked. */
function router(asked: string[][]): EventRouter {
  return {
    resolve: async (events) => {
      asked.push(events.map((e) => `${e.provider}:${e.jobId}`));
      return events.map((e) => ({ event: { ...e, queue: `${e.provider}-q` } }));
    },
  };
}

describe('hooksFor / allHooks / podsToSweep', () => {
  const p = ports({
    hooks: { github: hooks('github', ['job-a']), gitlab: hooks('gitlab', ['job-a', 'job-b']) },
    queueProvider: (q) => (q === 'gh' ? 'github' : q === 'gl' ? 'gitlab' : undefined),
  });

  it('a queue gets the hooks of its provider, and none when it has no provider or its provider none', async () => {
    const job: V1Job = {};
    expect((await hooksFor(p, 'gh')?.beforeCreate({} as never, job))?.metadata?.name).toBe('github');
    expect((await hooksFor(p, 'gl')?.beforeCreate({} as never, job))?.metadata?.name).toBe('gitlab');
    expect(hooksFor(p, 'other')).toBeUndefined();
    expect(hooksFor(ports({ hooks: { github: hooks('github') } }), 'gh')).toBeUndefined();
  });

  it('the once-per-tick steps ask every provider: the pods to sweep are the union, none when no one asks', () => {
    expect(allHooks(p)).toHaveLength(2);
    expect(podsToSweep(p, { jobs: [], now: 0 })).toEqual(['job-a', 'job-b']);
    expect(podsToSweep(ports({ hooks: { github: hooks('github') } }), { jobs: [], now: 0 })).toBeUndefined();
    expect(podsToSweep(ports({}), { jobs: [], now: 0 })).toBeUndefined();
  });
});

describe('routeEvents', () => {
  it("asks each provider's router about its own events only, and keeps the batch's order", async () => {
    const asked: string[][] = [];
    const events = [unrouted('gitlab', '1'), jobEvent('bk'), unrouted('github', '2'), unrouted('gitlab', '3')];
    const outcomes = await routeEvents(ports({ routers: { gitlab: router(asked), github: router(asked) } }), events);
    expect(asked.sort()).toEqual([['github:2'], ['gitlab:1', 'gitlab:3']]);
    expect(outcomes.map((o) => ('event' in o ? o.event.queue : o))).toEqual([
      'gitlab-q',
      'default',
      'github-q',
      'gitlab-q',
    ]);
  });

  it('an event whose provider has no router waits (failed); a router that throws fails the whole batch', async () => {
    const events = [unrouted('github', '2'), jobEvent('bk')];
    expect(await routeEvents(ports({ routers: { gitlab: router([]) } }), events)).toEqual([
      { failed: 'no router for events without a queue' },
      { event: events[1] },
    ]);
    const broken: EventRouter = { resolve: () => Promise.reject(new Error('GitLab down')) };
    const all = await routeEvents(ports({ routers: { github: broken } }), events);
    expect(all.every((o) => 'failed' in o && o.failed.includes('GitLab down'))).toBe(true);
  });
});
