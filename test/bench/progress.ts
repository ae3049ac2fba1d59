import { readFileSync } from 'node:fs';

/**
 * Progress lines of `npm run bench` on stderr (stdout stays the JSON document), each with the
 * time since the benchmark started, so a run that takes minutes is never silent.
 */
const started = performance.now();

export function progress(part: string, message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1);
  process.stderr.write(`[bench +${s}s] ${part}: ${message}\n`);
}

/** Calls fn every `ms` until the returned stop() (unref'd: never keeps the process alive). */
export function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
}

/** CPU time (user + system) this process used since `since` (process.cpuUsage()), in ms. */
export function cpuMsSince(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/**
 * CPU time (user + system, every thread) another process has used, in ms, from /proc (Linux);
 * undefined elsewhere. Used for DynamoDB Local's JVM: how much of a run is the emulator's work.
 */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS : undefined;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;
