/**
 * Runs the real agent-side client (infra/k8s/cache/ci-cache) with /bin/sh, as an agent would:
 * CI_CACHE_URL and CI_CACHE_TOKEN_FILE in its environment, a working directory, and its exit
 * status, output and duration returned.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';

export const CI_CACHE = path.join(PROJECT_ROOT, 'infra/k8s/cache/ci-cache');

export interface ClientRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface ClientOptions {
  readonly url: string;
  /** The token's text (written to a file the client reads), or undefined for no file. */
  readonly token?: string | undefined;
  readonly cwd: string;
  readonly env?: Record<string, string>;
  /** Called with the child once spawned (to kill it). */
  readonly onSpawn?: (pid: number) => void;
}

export async function tokenFile(token: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ci-cache-token-'));
  const file = path.join(dir, 'token');
  await writeFile(file, token, { mode: 0o600 });
  return file;
}

export async function runClient(args: readonly string[], options: ClientOptions): Promise<ClientRun> {
  const file = options.token === undefined ? '/nonexistent/token' : await tokenFile(options.token);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', [CI_CACHE, ...args], {
      cwd: options.cwd,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        TMPDIR: os.tmpdir(),
        CI_CACHE_URL: options.url,
        CI_CACHE_TOKEN_FILE: file,
        ...options.env,
      },
      detached: true, // its own process group, so a test can kill it with its workers
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - started }));
  });
}
