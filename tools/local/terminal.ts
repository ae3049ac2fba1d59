/**
 * Terminal output of the local stack: a compact status block per queue, redrawn in place when
 * stdout is a TTY (plain lines otherwise, only when something changed), and one line per
 * scaling decision printed above it.
 */
import type { Decision } from '../../functions/core/decision.js';
import type { LocalStackStatus } from './stack.js';

const time = (ms = Date.now()) => new Date(ms).toTimeString().slice(0, 8);

export function statusLines(s: LocalStackStatus): string[] {
  const head = `queue            pending  running  in flight   max seen  Jobs created (agents)`;
  const rows = s.queues.map(
    (q) =>
      `${q.queue.padEnd(16).slice(0, 16)} ${String(q.pending).padStart(7)}  ${String(q.running).padStart(7)}  ${`${q.inFlight}/${q.maxAgents}`.padStart(9)}  ${String(q.maxInFlight).padStart(9)}  ${q.jobsCreated} (${q.agentsRequested})`,
  );
  const jobs = s.ciJobs;
  const ci =
    s.cluster === 'embedded'
      ? `CI jobs: ${jobs.length} seen, ${jobs.filter((j) => j.agentRunningAt !== undefined).length} got an agent, ${jobs.filter((j) => j.finishedAt !== undefined).length} finished`
      : 'CI jobs are run by your real agents';
  return [`── ${time()} · ${s.ticks} scaler ticks · ${ci}`, head, ...rows];
}

export function decisionLine(d: Decision, created: number, jobName?: string): string {
  const state = `pending ${d.pending}, running ${d.running}, in flight ${d.inFlight}/${d.maxAgents}`;
  if (created > 0) {
    return `${time()} ${d.queue}: +${created} agent${created === 1 ? '' : 's'} (${d.reason}; ${state})${jobName ? ` -> Job ${jobName}` : ''}`;
  }
  if (d.reason === 'capped')
    return `${time()} ${d.queue}: at MAX_AGENTS (${state}); pending jobs wait for a free agent`;
  return `${time()} ${d.queue}: nothing to do (${state})`;
}

export class Terminal {
  private drawn = 0;
  private last = '';
  private lastPlainAt = 0;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  get tty(): boolean {
    return this.out.isTTY === true;
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  /** A line that stays (printed above the status block). */
  line(text: string): void {
    if (!this.tty) {
      this.out.write(`${text}\n`);
      return;
    }
    const block = this.last;
    this.clear();
    this.out.write(`${text}\n`);
    if (block) this.draw(block);
  }

  private draw(block: string): void {
    this.out.write(`${block}\n`);
    this.drawn = block.split('\n').length;
  }

  /** The status block: redrawn in place on a TTY; otherwise printed when it changed (at most every 5 s). */
  status(lines: string[]): void {
    const block = lines.join('\n');
    if (this.tty) {
      this.clear();
      this.draw(block);
      this.last = block;
      return;
    }
    const withoutClock = lines.slice(1).join('\n') + (lines[0] ?? '').replace(/^── \S+ · \d+ scaler ticks · /, '');
    if (withoutClock === this.last || Date.now() - this.lastPlainAt < 5000) return;
    this.last = withoutClock;
    this.lastPlainAt = Date.now();
    this.out.write(`${block}\n`);
  }

  /** Leaves the last status block on screen and stops redrawing over it. */
  release(): void {
    this.drawn = 0;
    this.last = '';
  }
}
