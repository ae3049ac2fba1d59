/**
 * The scaler's per-provider ports looked up: the dispatch hooks of a queue's provider, every
 * provider's hooks for the once-per-tick steps, and the routers of events without a queue, each
 * asked only about its own provider's events. Pure lookups: no I/O of their own.
 */
import type { V1Job } from '@kubernetes/client-node';
import { isRouted, type Provider, type QueuedJobEvent } from '../core/job-event.js';
import { describeError } from '../shared/errors.js';
import type { DispatchHooks, RouteOutcome, ScalerPorts } from './ports.js';

/** The hooks of the provider of `queue` (ports.queueProvider), if it has any. */
export function hooksFor(ports: ScalerPorts, queue: string): DispatchHooks | undefined {
  const provider = ports.hooks ? ports.queueProvider?.(queue) : undefined;
  return provider === undefined ? undefined : ports.hooks?.[provider];
}

/** Every provider's hooks, for the steps that run once per tick (pods to sweep, housekeeping). */
export function allHooks(ports: ScalerPorts): DispatchHooks[] {
  return Object.values(ports.hooks ?? {}).filter((h): h is DispatchHooks => h !== undefined);
}

/**
 * Gives each event its queue: an event without one goes to the router of its provider. When a
 * router fails, every event of the batch waits for a later tick.
 */
export async function routeEvents(ports: ScalerPorts, events: readonly QueuedJobEvent[]): Promise<RouteOutcome[]> {
  const outcomes: RouteOutcome[] = events.map((event) =>
    isRouted(event) ? { event } : { failed: 'no router for events without a queue' },
  );
  const unrouted = new Map<Provider, number[]>();
  events.forEach((event, i) => {
    if (!isRouted(event) && ports.routers?.[event.provider])
      unrouted.set(event.provider, [...(unrouted.get(event.provider) ?? []), i]);
  });
  try {
    await Promise.all(
      [...unrouted].map(async ([provider, indexes]) => {
        const resolved = await ports.routers?.[provider]?.resolve(indexes.map((i) => events[i] as QueuedJobEvent));
        indexes.forEach((index, k) => {
          outcomes[index] = resolved?.[k] ?? { failed: `the ${provider} router gave no outcome` };
        });
      }),
    );
  } catch (e) {
    return events.map(() => ({ failed: describeError(e) }));
  }
  return outcomes;
}

/** The Jobs whose pods some provider's housekeeping needs this tick; undefined when none needs any. */
export function podsToSweep(
  ports: ScalerPorts,
  view: { readonly jobs: readonly V1Job[]; readonly now: number },
): readonly string[] | undefined {
  const wanted = allHooks(ports)
    .map((hooks) => hooks.podsToSweep?.(view))
    .filter((names): names is readonly string[] => names !== undefined);
  return wanted.length === 0 ? undefined : [...new Set(wanted.flat())];
}
