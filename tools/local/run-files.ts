/**
 * The local stack's run folders (`.local/run-<pid>-<time>/`) and the record in each (`run.json`):
 * which process owns the stack, its child processes (DynamoDB Local's JVM) and its webhook URL.
 * `npm run demo` finds a running stack through it, and the next `npm start` reaps what a stack
 * killed with SIGKILL left behind (its JVM and its folder): no 'exit' hook runs on SIGKILL.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LocalSecrets } from './ci-webhooks.js';

export const RUN_FILE = 'run.json';
const RUN_DIR = /^run-(\d+)-/;

export interface RunRecord {
  /** The process that started the stack (`npm start`'s node). */
  readonly ownerPid: number;
  /** Child processes to stop with it (DynamoDB Local's JVM). */
  readonly childPids: readonly number[];
  /** The webhook endpoint, once it listens. */
  readonly url?: string;
  /** The webhook secrets in force (random per start unless set): `npm run demo` signs with them. */
  readonly secrets?: LocalSecrets;
}

/** Written readable by the owner only: it holds the stack's webhook secrets. */
export function writeRunRecord(runDir: string, record: RunRecord): void {
  writeFileSync(path.join(runDir, RUN_FILE), `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a process ('' when unknown); guards against a recycled pid. */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    try {
      return execFileSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8' });
    } catch {
      return '';
    }
  }
}

interface RunFolder {
  readonly dir: string;
  readonly ownerPid: number;
  readonly record?: RunRecord;
}

function runFolders(localDir: string): RunFolder[] {
  if (!existsSync(localDir)) return [];
  return readdirSync(localDir, { withFileTypes: true }).flatMap((entry) => {
    const match = entry.isDirectory() ? RUN_DIR.exec(entry.name) : null;
    if (!match?.[1]) return [];
    const dir = path.join(localDir, entry.name);
    let record: RunRecord | undefined;
    try {
      record = JSON.parse(readFileSync(path.join(dir, RUN_FILE), 'utf8')) as RunRecord;
    } catch {
      record = undefined; // killed before it wrote the record
    }
    return [{ dir, ownerPid: record?.ownerPid ?? Number(match[1]), ...(record ? { record } : {}) }];
  });
}

/**
 * Stops the children of stacks whose owner is gone and removes their folders. `childMarker` must
 * appear in a child's command line for it to be killed (a recycled pid is left alone).
 * Returns one line per folder cleaned.
 */
export function reapOrphanedRuns(localDir: string, childMarker = 'DynamoDBLocal.jar'): string[] {
  const reaped: string[] = [];
  for (const run of runFolders(localDir)) {
    if (run.ownerPid === process.pid || isAlive(run.ownerPid)) continue;
    const killed: number[] = [];
    for (const pid of run.record?.childPids ?? []) {
      if (!isAlive(pid) || !commandLine(pid).includes(childMarker)) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // gone meanwhile
      }
    }
    rmSync(run.dir, { recursive: true, force: true });
    reaped.push(
      `cleaned up after a local stack that ended without stopping (pid ${run.ownerPid}): ` +
        `${killed.length > 0 ? `stopped DynamoDB Local (pid ${killed.join(', ')}), ` : ''}removed ${path.basename(run.dir)}`,
    );
  }
  return reaped;
}

/** The record of a running local stack (the newest one, or the one serving `url`), if any. */
export function runningStack(localDir: string, url?: string): RunRecord | undefined {
  const live = runFolders(localDir).filter(
    (run) => run.record?.url && (url === undefined || run.record.url === url) && isAlive(run.ownerPid),
  );
  const newest = (dir: string) => statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  return live.sort((a, b) => newest(a.dir) - newest(b.dir)).at(-1)?.record;
}
