/**
 * A virtual clock for discrete-event simulation of async code: nothing really sleeps.
 *
 * Timers live in a heap ordered by (time, insertion). The run loop lets every runnable promise
 * chain finish (one macrotask turn drains the microtask queue) before it jumps the clock to the
 * next timer, so async code whose only waits are `clock.sleep()` (and promises of in-memory
 * ports) runs in virtual time exactly as it would in real time, deterministically.
 */

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class VirtualClock {
  /** Virtual milliseconds since the start of the simulation. */
  now = 0;
  private heap: Timer[] = [];
  private seq = 0;
  private stopped = false;

  constructor(readonly epochMs: number = Date.UTC(2026, 10, 23, 8, 0, 0)) {}

  /** Epoch milliseconds of the current virtual time (the `now()` given to the scaler). */
  epochNow = (): number => this.epochMs + this.now;

  /** Runs `fn` at virtual time `at` (ms); times in the past run at the current time. */
  at(at: number, fn: () => void): void {
    const timer = { at: Math.max(at, this.now), seq: this.seq++, fn };
    const h = this.heap;
    h.push(timer);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p];
      if (parent === undefined || before(parent, timer)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = timer;
  }

  after(ms: number, fn: () => void): void {
    this.at(this.now + ms, fn);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(Math.max(0, ms), resolve));
  }

  stop(): void {
    this.stopped = true;
  }

  private pop(): Timer | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      const left = h[l];
      const right = h[r];
      let m = i;
      let best: Timer = last;
      if (left !== undefined && before(left, best)) {
        m = l;
        best = left;
      }
      if (right !== undefined && before(right, best)) {
        m = r;
        best = right;
      }
      if (m === i) break;
      h[i] = best;
      i = m;
    }
    h[i] = last;
    return top;
  }

  /** Runs timers in order until `stop()` is called, no timer is left, or the next is after `until`. */
  async run(until = Number.POSITIVE_INFINITY): Promise<void> {
    this.stopped = false;
    for (;;) {
      await settle();
      if (this.stopped) return;
      const next = this.heap[0];
      if (!next || next.at > until) return;
      this.pop();
      this.now = next.at;
      next.fn();
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
