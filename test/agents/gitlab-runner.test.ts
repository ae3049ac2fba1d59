/**
 * The GitLab template's command, as rendered, against a fake GitLab API on loopback. gitlab-runner
 * itself cannot be built here (tools/agents/build.sh: the Go module proxy refuses nine of its
 * gitlab.com dependencies), so `gitlab-runner run-single` is run-single-standin.ts, which
 * reproduces from gitlab-runner's source what these tests rely on (see that file). The shell
 * around it is the template's own.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backoffVerdict, containerEnv, type FakeApi, fakeApi, renderedContainer, start } from './support.js';

const TOKEN = 'glrt-t1_0123456789abcdefghij';
const STANDIN = join(import.meta.dirname, 'run-single-standin.ts');
let api: FakeApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function until(what: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !what() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
  expect(what()).toBe(true);
}

async function runRunner(url: string, waitTimeout: number, startDelaySeconds = 0) {
  const c = await renderedContainer('gitlab');
  const dir = mkdtempSync(join(tmpdir(), 'gl-runner-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  // A runner slow to start (its `sleep` holds the log pipe open: the shell must not wait for it).
  const delay = startDelaySeconds > 0 ? `sleep ${startDelaySeconds}\n` : '';
  writeFileSync(join(bin, 'gitlab-runner'), `#!/bin/sh\n${delay}exec ${process.execPath} ${STANDIN} "$@"\n`, {
    mode: 0o755,
  });
  const home = join(dir, 'home');
  mkdirSync(home);
  const termination = join(dir, 'termination-log');
  const command = c.command!.map((a) => a.replaceAll('/dev/termination-log', termination));
  const args = c.args!.map((a) => (a.startsWith('--wait-timeout=') ? `--wait-timeout=${waitTimeout}` : a));
  const env = containerEnv(c.env!, { CI_SERVER_URL: url, CI_SERVER_TOKEN: TOKEN, POD_NAME: 'cia-default-0' });
  expect(env.HOME).toBe('/home/runner');
  const run = start([...command, ...args], { ...env, HOME: home, PATH: `${bin}:${process.env.PATH}` }, dir);
  const message = () => {
    try {
      return readFileSync(termination, 'utf8');
    } catch {
      return '';
    }
  };
  return { run, message, container: c };
}

describe('gitlab-runner run-single (stand-in) with the template command', () => {
  it('a revoked token (403 on jobs/request): exits non-zero within seconds with the reason, not 0 after --wait-timeout', async () => {
    api = await fakeApi(() => ({ status: 403, json: { message: '403 Forbidden' } }));
    const { run, message, container } = await runRunner(api.url, 300);
    const exit = await run.exited;
    expect(exit.code).toBe(3);
    expect(exit.ms).toBeLessThan(60_000);
    expect(exit.output).toMatch(/Runner is not healthy/);
    // Back-off counts it as a start failure, with the reason in its warn line and metrics.
    expect(backoffVerdict(container, exit, message())).toEqual({
      kind: 'failed',
      reason: 'Error',
      message: expect.stringMatching(/^container runner exited with code 3: gitlab-runner not healthy: http/),
      endedAt: expect.any(Number),
    });
    expect(message()).toMatch(/gitlab-runner not healthy: .* refused the runner token \(403/);
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /api/v4/jobs/request']);
  }, 120_000);

  it("without the template's shell, run-single keeps running after the 403 and ends with exit 0", async () => {
    api = await fakeApi(() => ({ status: 403, json: { message: '403 Forbidden' } }));
    const c = await renderedContainer('gitlab');
    const run = start(
      [process.execPath, STANDIN, ...c.args!],
      {
        PATH: process.env.PATH!,
        CI_SERVER_URL: api.url,
        CI_SERVER_TOKEN: TOKEN,
      },
      tmpdir(),
    );
    await new Promise((r) => setTimeout(r, 3_000));
    expect(run.output()).toMatch(/Runner is not healthy/);
    process.kill(run.pid, 'SIGTERM'); // what --wait-timeout would do 300 s later: end with 0
    expect((await run.exited).code).toBe(0);
  }, 60_000);

  it('an unreachable GitLab: exits non-zero within seconds', async () => {
    api = await fakeApi(() => ({ status: 204 }));
    const url = api.url;
    await api.close();
    api = undefined;
    const { run, message } = await runRunner(url, 300);
    const exit = await run.exited;
    expect(exit.code).toBe(3);
    expect(exit.ms).toBeLessThan(60_000);
    expect(message()).toMatch(/could not be reached/);
  }, 120_000);

  it('a valid token and no job (204): exits 0 after --wait-timeout', async () => {
    api = await fakeApi(() => ({ status: 204 }));
    const { run, message, container } = await runRunner(api.url, 2);
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    expect(backoffVerdict(container, exit, message())).toEqual({ kind: 'healthy' });
    expect(exit.output).toMatch(/has not received a job in 2 seconds/);
    expect(message()).toBe('');
    expect(api.requests[0]).toMatchObject({ method: 'POST', path: '/api/v4/jobs/request' });
    expect(JSON.parse(api.requests[0]!.body)).toMatchObject({ token: TOKEN });
  }, 120_000);

  // The scaler stops a surplus agent by deleting its pod: the kubelet sends SIGTERM to the
  // template's shell, PID 1 of the container (what `process.kill(run.pid)` does here).
  it('SIGTERM while waiting for a job: the runner is asked to quit (SIGQUIT) and the pod exits 0 within seconds', async () => {
    api = await fakeApi(() => ({ status: 204 }));
    const { run, container } = await runRunner(api.url, 300);
    await until(() => api!.requests.length > 0, 30_000);
    const sent = Date.now();
    process.kill(run.pid, 'SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    // At most one CheckInterval (3 s) after an empty answer.
    expect(Date.now() - sent).toBeLessThan(6_000);
    expect(exit.output).toMatch(/Requested quit, waiting for builds to finish/);
    expect(exit.output).not.toMatch(/Requested exit/);
    expect(backoffVerdict(container, exit, '')).toEqual({ kind: 'healthy' });
  }, 60_000);

  it('SIGTERM during a job: the job runs to its end and is reported a success, then the pod exits 0', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'gl-job-')), 'job-done');
    let given = false;
    api = await fakeApi((req) => {
      if (req.url === '/api/v4/jobs/request') {
        if (given) return { status: 204 };
        given = true;
        return {
          status: 201,
          json: {
            id: 42,
            token: 'job-token-42',
            steps: [{ name: 'script', script: ['sleep 3', `echo done > ${marker}`], when: 'on_success' }],
          },
        };
      }
      return { status: 200, json: {} };
    });
    const { run, container } = await runRunner(api.url, 300);
    const updates = () =>
      api!.requests.filter((r) => r.method === 'PUT' && r.path === '/api/v4/jobs/42').map((r) => JSON.parse(r.body));
    await until(() => updates().some((u) => u.state === 'running'), 30_000);
    const sent = Date.now();
    process.kill(run.pid, 'SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    expect(Date.now() - sent).toBeGreaterThan(2_000);
    expect(exit.output).toMatch(/Requested quit, waiting for builds to finish/);
    expect(updates().map((u) => u.state)).toEqual(['running', 'success']);
    expect(readFileSync(marker, 'utf8')).toBe('done\n');
    // It asked for no job after the one it ran.
    expect(api.requests.filter((r) => r.path === '/api/v4/jobs/request')).toHaveLength(1);
    expect(backoffVerdict(container, exit, '')).toEqual({ kind: 'healthy' });
  }, 60_000);

  it('SIGTERM before the runner handles signals: stopped with SIGTERM (SIGQUIT would crash it), the pod exits 0', async () => {
    api = await fakeApi(() => ({ status: 204 }));
    const { run } = await runRunner(api.url, 300, 3);
    await new Promise((r) => setTimeout(r, 500));
    process.kill(run.pid, 'SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(2_500);
    expect(exit.output).toMatch(/stop requested before gitlab-runner started/);
    expect(api.requests).toEqual([]);
  }, 60_000);
});
