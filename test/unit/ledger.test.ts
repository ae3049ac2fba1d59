import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JOB_EVENT_KINDS, type JobEvent, type JobEventKind } from '../../functions/core/job-event.js';
import { advance, coalesce, coalesceGroups, type LedgerState, rankOf } from '../../functions/core/ledger.js';
import { type JobEventFields, jobEvent } from '../support/job-events.js';

function ev(kind: JobEventKind, jobId = 'job-1', extra: JobEventFields = {}): JobEvent {
  return jobEvent(jobId, kind, {
    occurredAt: `2026-11-23T10:00:0${JOB_EVENT_KINDS.indexOf(kind)}Z`,
    receivedAt: '2026-11-23T10:00:10Z',
    ...extra,
  });
}

function fold(events: readonly JobEvent[], start?: LedgerState): LedgerState | undefined {
  let state = start;
  for (const event of events) state = advance(state, event) ?? state;
  return state;
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

describe('rankOf', () => {
  it.each([
    ['scheduled', 1],
    ['started', 2],
    ['finished', 3],
    ['cancelled', 3],
  ] as const)('%s has rank %i', (kind, rank) => {
    expect(rankOf(kind)).toBe(rank);
  });
});

describe('advance', () => {
  const at = (kind: JobEventKind): LedgerState => advance(undefined, ev(kind))!;

  it.each<[string, JobEventKind | undefined, JobEventKind, JobEventKind | undefined]>([
    // [case, current state, event, resulting state (undefined = no-op)]
    ['new job scheduled', undefined, 'scheduled', 'scheduled'],
    ['started before any scheduled creates it started', undefined, 'started', 'started'],
    ['finished for an unseen job creates it terminal', undefined, 'finished', 'finished'],
    ['cancelled for an unseen job creates it terminal', undefined, 'cancelled', 'cancelled'],
    ['scheduled -> started', 'scheduled', 'started', 'started'],
    ['scheduled -> finished (started lost)', 'scheduled', 'finished', 'finished'],
    ['scheduled -> cancelled', 'scheduled', 'cancelled', 'cancelled'],
    ['started -> finished', 'started', 'finished', 'finished'],
    ['started -> cancelled', 'started', 'cancelled', 'cancelled'],
    ['duplicate scheduled', 'scheduled', 'scheduled', undefined],
    ['duplicate started', 'started', 'started', undefined],
    ['duplicate finished', 'finished', 'finished', undefined],
    ['duplicate cancelled', 'cancelled', 'cancelled', undefined],
    ['late scheduled after started', 'started', 'scheduled', undefined],
    ['late scheduled after finished', 'finished', 'scheduled', undefined],
    ['late scheduled after cancelled', 'cancelled', 'scheduled', undefined],
    ['late started after finished', 'finished', 'started', undefined],
    ['late started after cancelled', 'cancelled', 'started', undefined],
    ['cancelled after finished stays finished', 'finished', 'cancelled', undefined],
    ['finished after cancelled: finished wins the terminal tie', 'cancelled', 'finished', 'finished'],
  ])('%s', (_name, current, kind, expected) => {
    const next = advance(current ? at(current) : undefined, ev(kind));
    expect(next?.state).toBe(expected);
    if (next) expect(next.rank).toBe(rankOf(kind));
  });

  it('records queue, provider, job id, event time and trace of the event that moved it', () => {
    const next = advance(at('scheduled'), ev('started', 'job-1', { trace: { pipeline: 'app', build: '7' } }));
    expect(next).toEqual({
      provider: 'buildkite',
      jobId: 'job-1',
      queue: 'default',
      state: 'started',
      rank: 2,
      eventAt: '2026-11-23T10:00:01Z',
      trace: { pipeline: 'app', build: '7' },
    });
  });
});

describe('order independence', () => {
  // Every non-empty subset of the four kinds, in every order: the final state depends only on
  // which events arrived, never on their order (nor on duplicates).
  const subsets = Array.from({ length: 15 }, (_, mask) => JOB_EVENT_KINDS.filter((_k, i) => ((mask + 1) >> i) & 1));
  const expectedFor = (kinds: readonly JobEventKind[]): JobEventKind =>
    kinds.includes('finished')
      ? 'finished'
      : kinds.includes('cancelled')
        ? 'cancelled'
        : kinds.includes('started')
          ? 'started'
          : 'scheduled';

  it.each(subsets.map((kinds) => [kinds.join('+'), kinds] as const))(
    '%s ends in the same state in every order',
    (_n, kinds) => {
      for (const order of permutations(kinds)) {
        const final = fold(order.map((k) => ev(k)));
        expect(final?.state, order.join(' -> ')).toBe(expectedFor(kinds));
        // One write per batch gives the same result as applying one by one.
        expect(fold(coalesce(order.map((k) => ev(k))))?.state, `coalesced ${order.join(' -> ')}`).toBe(
          expectedFor(kinds),
        );
      }
    },
  );

  it('property: any sequence with duplicates, split into any batches, converges to the same state', () => {
    const kind = fc.constantFrom(...JOB_EVENT_KINDS);
    fc.assert(
      fc.property(
        fc.array(kind, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 12 }),
        (kinds, batchSize) => {
          const events = kinds.map((k) => ev(k));
          const oneByOne = fold(events);
          let batched: LedgerState | undefined;
          for (let i = 0; i < events.length; i += batchSize)
            batched = fold(coalesce(events.slice(i, i + batchSize)), batched);
          const reversed = fold([...events].reverse());
          expect(oneByOne?.state).toBe(expectedFor(kinds));
          expect(batched?.state).toBe(oneByOne?.state);
          expect(reversed?.state).toBe(oneByOne?.state);
        },
      ),
    );
  });
});

describe('coalesce', () => {
  it('keeps one event per job: the furthest, ties to the first', () => {
    const firstFinished = ev('finished', 'a', { occurredAt: 'first' });
    const batch = [
      ev('scheduled', 'a'),
      ev('scheduled', 'b'),
      firstFinished,
      ev('started', 'a'),
      ev('finished', 'a', { occurredAt: 'second' }),
      ev('scheduled', 'b'),
      ev('cancelled', 'c'),
    ];
    expect(coalesce(batch)).toEqual([firstFinished, batch[1], batch[6]]);
  });

  it('reports which input events each kept event represents', () => {
    const batch = [ev('started', 'a'), ev('scheduled', 'b'), ev('scheduled', 'a'), ev('started', 'a')];
    expect(coalesceGroups(batch).map((g) => [g.event.jobId, g.event.kind, g.members])).toEqual([
      ['a', 'started', [0, 2, 3]],
      ['b', 'scheduled', [1]],
    ]);
  });

  it('treats the same job id of two providers as two jobs', () => {
    const batch = [ev('scheduled', '1'), ev('scheduled', '1', { provider: 'github', id: 'x' })];
    expect(coalesce(batch)).toHaveLength(2);
  });

  it('returns nothing for an empty batch', () => {
    expect(coalesce([])).toEqual([]);
  });
});
