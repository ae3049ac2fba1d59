import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { deletionRequestedAt, STOP_SETTLE_MS, selectStops } from '../../functions/core/scale-down.js';

const NOW = Date.parse('2026-03-02T10:00:00Z');
const at = (secondsAgo: number) => new Date(NOW - secondsAgo * 1000).toISOString();

function pod(
  name: string,
  o: {
    phase?: string;
    ready?: boolean;
    startedAgo?: number;
    createdAgo?: number;
    /** Seconds ago its deletion was asked for, with a grace period of 3600 s. */
    deletedAgo?: number;
  } = {},
): V1Pod {
  const phase = o.phase ?? 'Running';
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      creationTimestamp: new Date(at(o.createdAgo ?? 600)),
      ...(o.deletedAgo === undefined
        ? {}
        : { deletionTimestamp: new Date(NOW + (3600 - o.deletedAgo) * 1000), deletionGracePeriodSeconds: 3600 }),
    },
    status: {
      phase,
      ...(phase === 'Pending' ? {} : { startTime: new Date(at(o.startedAgo ?? 300)) }),
      conditions: [{ type: 'Ready', status: (o.ready ?? phase === 'Running') ? 'True' : 'False' }],
    },
  };
}

const names = (s: ReturnType<typeof selectStops>) => s.stop.map((p) => p.name);

describe('selectStops: which agents a scale-down stops', () => {
  it('stops the newest Running and Ready agents first (latest startTime: the fewest CI jobs taken), up to scaleDown, by name and uid', () => {
    const pods = [pod('c', { startedAgo: 100 }), pod('a', { startedAgo: 300 }), pod('b', { startedAgo: 200 })];
    const s = selectStops(pods, 2, NOW);
    expect(s.stop).toEqual([
      { name: 'c', uid: 'uid-c' },
      { name: 'b', uid: 'uid-b' },
    ]);
    expect(s).toMatchObject({ stopping: 0, candidates: 3 });
    expect(names(selectStops(pods, 5, NOW))).toEqual(['c', 'b', 'a']);
    expect(names(selectStops(pods, 0, NOW))).toEqual([]);
  });

  it('never stops a Pending pod, one not Ready, one ended, or one already being deleted', () => {
    const pods = [
      pod('pending', { phase: 'Pending' }),
      pod('unready', { ready: false, startedAgo: 900 }),
      pod('done', { phase: 'Succeeded', startedAgo: 900 }),
      pod('leaving', { deletedAgo: 600, startedAgo: 900 }),
      pod('young', { startedAgo: 10 }),
    ];
    const s = selectStops(pods, 5, NOW);
    expect(names(s)).toEqual(['young']);
    expect(s.candidates).toBe(1);
  });

  it('a queue with no Running and Ready pod stops nothing', () => {
    expect(selectStops([pod('p', { phase: 'Pending' }), pod('u', { ready: false })], 2, NOW).stop).toEqual([]);
    expect(selectStops([], 2, NOW).stop).toEqual([]);
  });

  it('agents whose stop was asked for within the settle time are the surplus leaving: that many fewer are stopped', () => {
    const pods = [
      pod('stopped-just-now', { deletedAgo: 2, startedAgo: 900 }),
      pod('a', { startedAgo: 300 }),
      pod('b', { startedAgo: 200 }),
      pod('c', { startedAgo: 100 }),
    ];
    // The surplus of 2 is 1 leaving + 1 more (the newest): a tick soon after a stop does not stop twice.
    const s = selectStops(pods, 2, NOW);
    expect(names(s)).toEqual(['c']);
    expect(s.stopping).toBe(1);
    // Still stopping past the settle time: that agent is busy finishing a CI job (an idle one would
    // have gone), so the surplus it does not cover is stopped from the others.
    const later = selectStops(pods, 2, NOW + STOP_SETTLE_MS);
    expect(names(later)).toEqual(['c', 'b']);
    expect(later.stopping).toBe(0);
  });

  it('ties on startTime go by creation (newest first), then name: concurrent scalers pick the same pods', () => {
    const pods = [
      pod('z', { startedAgo: 100, createdAgo: 500 }),
      pod('y', { startedAgo: 100, createdAgo: 400 }),
      pod('x', { startedAgo: 100, createdAgo: 400 }),
    ];
    expect(names(selectStops(pods, 3, NOW))).toEqual(['x', 'y', 'z']);
  });

  it('deletionRequestedAt: the deletionTimestamp less its grace period', () => {
    expect(deletionRequestedAt(pod('a', { deletedAgo: 30 }))).toBe(NOW - 30_000);
    expect(deletionRequestedAt(pod('b'))).toBeUndefined();
  });
});
