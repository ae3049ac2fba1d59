/**
 * The events queue in memory, with SQS semantics as the scaler's EventSource sees them: receive
 * returns up to `max` visible messages (long-polling up to `waitSeconds` of VIRTUAL time for the
 * first one), a received message is invisible for the visibility timeout and comes back (with a
 * higher receive count and a new receipt handle) unless deleted with its latest receipt handle.
 */

import type { JobEvent } from '../../functions/core/job-event.js';
import type { EventSource, ReceivedEvent } from '../../functions/scaler/ports.js';
import type { VirtualClock } from './clock.js';

interface Message {
  readonly messageId: string;
  readonly body: JobEvent;
  visibleAt: number;
  receiveCount: number;
  receiptHandle?: string;
}

export interface QueueCounters {
  send: number;
  receive: number;
  /** DeleteMessageBatch requests (10 handles each). */
  deleteBatch: number;
}

export class SimEventQueue implements EventSource {
  private readonly messages = new Map<string, Message>();
  private readonly byHandle = new Map<string, Message>();
  private readonly waiters = new Set<() => void>();
  private seq = 0;
  readonly counters: QueueCounters = { send: 0, receive: 0, deleteBatch: 0 };

  constructor(
    private readonly clock: VirtualClock,
    private readonly options: { visibilityTimeoutSeconds: number; latencyMs: number },
  ) {}

  get depth(): number {
    return this.messages.size;
  }

  /** SendMessage: visible at once. */
  send(event: JobEvent): void {
    this.counters.send++;
    const messageId = `m-${++this.seq}`;
    this.messages.set(messageId, { messageId, body: event, visibleAt: this.clock.now, receiveCount: 0 });
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private take(max: number): ReceivedEvent[] {
    const now = this.clock.now;
    const out: ReceivedEvent[] = [];
    for (const m of this.messages.values()) {
      if (out.length >= max) break;
      if (m.visibleAt > now) continue;
      if (m.receiptHandle) this.byHandle.delete(m.receiptHandle);
      m.receiveCount++;
      m.receiptHandle = `${m.messageId}/${m.receiveCount}`;
      m.visibleAt = now + this.options.visibilityTimeoutSeconds * 1000;
      this.byHandle.set(m.receiptHandle, m);
      this.clock.at(m.visibleAt, () => this.wake());
      out.push({
        receiptHandle: m.receiptHandle,
        messageId: m.messageId,
        receiveCount: m.receiveCount,
        event: structuredClone(m.body),
      });
    }
    return out;
  }

  async receive(options: { max: number; waitSeconds: number }): Promise<ReceivedEvent[]> {
    this.counters.receive++;
    await this.clock.sleep(this.options.latencyMs);
    const end = this.clock.now + Math.max(0, options.waitSeconds) * 1000;
    for (;;) {
      const got = this.take(Math.min(10, Math.max(1, options.max)));
      if (got.length > 0 || this.clock.now >= end) return got;
      await new Promise<void>((resolve) => {
        const w = () => {
          this.waiters.delete(w);
          resolve();
        };
        this.waiters.add(w);
        this.clock.at(end, w);
      });
    }
  }

  async delete(receiptHandles: readonly string[]): Promise<string[]> {
    this.counters.deleteBatch += Math.ceil(receiptHandles.length / 10);
    await this.clock.sleep(this.options.latencyMs);
    const failed: string[] = [];
    for (const h of receiptHandles) {
      const m = this.byHandle.get(h);
      // A stale handle (the message was received again since) does not delete it, like SQS.
      if (!m || m.receiptHandle !== h) {
        if (!m) continue; // already deleted: SQS answers success
        failed.push(h);
        continue;
      }
      this.byHandle.delete(h);
      this.messages.delete(m.messageId);
    }
    return failed;
  }
}
