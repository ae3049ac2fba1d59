/**
 * What a newcomer meets around `npm start` / `npm run demo` before any webhook: a mistyped option,
 * a bad variable, a stack killed with `kill -9`, a stack on another port, output piped to a file.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../functions/shared/config.js';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';
import { randomLocalSecrets } from '../../tools/local/ci-webhooks.js';
import { extraAgentsLine } from '../../tools/local/demo.js';
import { isAlive, RUN_FILE, reapOrphanedRuns, runningStack, writeRunRecord } from '../../tools/local/run-files.js';
import { startLocalStack } from '../../tools/local/stack.js';
import { Terminal } from '../../tools/local/terminal.js';

const TSX = path.join(PROJECT_ROOT, 'node_modules/.bin/tsx');
const scratch = mkdtempSync(path.join(tmpdir(), 'local-tooling-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function cli(script: string, args: string[]) {
  try {
    const { stdout, stderr } = await promisify(execFile)(TSX, [path.join(PROJECT_ROOT, script), ...args], {
      cwd: PROJECT_ROOT,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A pid that belonged to a process and is free now. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid ?? 0;
}

describe('command line', () => {
  it.each([
    ['tools/local/start.ts', 'Usage: npm start'],
    ['tools/local/demo.ts', 'Usage: npm run demo'],
  ])('%s: an unknown option prints what is wrong and the usage, no stack trace', async (script, usage) => {
    const { code, stderr } = await cli(script, ['--prot', '4000']);
    expect(code).toBe(2);
    expect(stderr).toContain("Unknown option '--prot'");
    expect(stderr).toContain(usage);
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});

describe('configuration', () => {
  it('is checked before anything starts: a bad variable is named and no emulator or run folder is made', async () => {
    const localDir = path.join(scratch, 'never-created');
    const started = startLocalStack({ port: 0, localDir, env: { MAX_AGENTS: 'lots' }, onLog: () => {} });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toThrow(/MAX_AGENTS/);
    expect(existsSync(localDir)).toBe(false);
  });
});

describe('run folders', () => {
  it('the next start stops the DynamoDB Local a killed stack left and removes its folder', async () => {
    const localDir = path.join(scratch, 'reap');
    const owner = await deadPid();
    const runDir = path.join(localDir, `run-${owner}-x`);
    mkdirSync(runDir, { recursive: true });
    // Stands in for the JVM: a process whose command line names DynamoDBLocal.jar.
    const jvm = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'DynamoDBLocal.jar'], {
      stdio: 'ignore',
    });
    const jvmPid = jvm.pid ?? 0;
    const exited = new Promise((resolve) => jvm.on('exit', resolve));
    // Another stack, still running (this process owns it): left alone.
    const liveDir = path.join(localDir, `run-${process.pid}-y`);
    mkdirSync(liveDir, { recursive: true });
    writeRunRecord(runDir, { ownerPid: owner, childPids: [jvmPid], url: 'http://127.0.0.1:1' });

    const lines = reapOrphanedRuns(localDir);
    await exited;
    expect(isAlive(jvmPid)).toBe(false);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(liveDir)).toBe(true);
    expect(lines).toEqual([expect.stringContaining(`stopped DynamoDB Local (pid ${jvmPid})`)]);
  });

  it('leaves alone a recorded pid that now belongs to another program', async () => {
    const localDir = path.join(scratch, 'recycled');
    const runDir = path.join(localDir, `run-${await deadPid()}-x`);
    mkdirSync(runDir, { recursive: true });
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    writeRunRecord(runDir, { ownerPid: await deadPid(), childPids: [other.pid ?? 0] });
    reapOrphanedRuns(localDir);
    expect(isAlive(other.pid ?? 0)).toBe(true);
    expect(existsSync(runDir)).toBe(false);
    other.kill();
  });

  it('the demo finds a running stack on any port through its run file', () => {
    const localDir = path.join(scratch, 'demo');
    const runDir = path.join(localDir, `run-${process.pid}-z`);
    mkdirSync(runDir, { recursive: true });
    expect(runningStack(localDir)).toBeUndefined();
    const secrets = randomLocalSecrets();
    writeRunRecord(runDir, { ownerPid: process.pid, childPids: [], url: 'http://127.0.0.1:4123', secrets });
    expect(runningStack(localDir)?.url).toBe('http://127.0.0.1:4123');
    // ... and the secrets to sign with, in a file only its owner can read.
    expect(runningStack(localDir, 'http://127.0.0.1:4123')?.secrets).toEqual(secrets);
    expect(statSync(path.join(runDir, RUN_FILE)).mode & 0o077).toBe(0);
    expect(runningStack(localDir, 'http://127.0.0.1:9999')).toBeUndefined();
    writeFileSync(path.join(runDir, RUN_FILE), 'not json');
    expect(runningStack(localDir)).toBeUndefined();
  });
});

describe('demo summary', () => {
  it('says what the agent count shows about the redeliveries instead of assuming it', () => {
    expect(extraAgentsLine(24, 24, 2, 0)).toBe('the 2 redeliveries added no agent');
    expect(extraAgentsLine(25, 24, 2, 0)).toBe('1 more agent(s) than CI jobs (2 redeliveries sent)');
  });
});

describe('live status', () => {
  it('prints plain lines (no cursor movement) when the output is not a terminal', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    const term = new Terminal(out as unknown as NodeJS.WriteStream);
    term.status(['── 10:00:00 · 1 scaler ticks · x', 'default: 1 pending']);
    term.line('a decision');
    term.status(['── 10:00:01 · 2 scaler ticks · x', 'default: 1 pending']);
    expect(text).toBe('── 10:00:00 · 1 scaler ticks · x\ndefault: 1 pending\na decision\n');
    expect(text).not.toContain('\x1b[');
  });
});
