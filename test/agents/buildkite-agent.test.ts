/**
 * The Buildkite template's command, as rendered, with the real buildkite-agent (built from the Go
 * module proxy by tools/agents/build.sh at the template's version) against a fake Agent API on
 * loopback. The image's tini is left out (it only forwards signals and reaps); its
 * ssh-env-config.sh, which ends in `exec "$@"`, is a stub doing just that.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  backoffVerdict,
  buildAgent,
  containerEnv,
  type FakeApi,
  fakeApi,
  renderedContainer,
  start,
} from './support.js';

const TOKEN = 'bkua_0123456789abcdef-registration';
let agentBin: string;
let api: FakeApi | undefined;
beforeAll(async () => {
  agentBin = await buildAgent('buildkite-agent');
}, 60 * 60_000);
afterEach(async () => {
  await api?.close();
  api = undefined;
});

/** Starts the rendered command with the token where the init container leaves it. */
async function runAgent(endpoint: string, idleTimeout: number, extraEnv: Record<string, string> = {}) {
  const c = await renderedContainer('buildkite');
  const dir = mkdtempSync(join(tmpdir(), 'bk-agent-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'ssh-env-config.sh'), '#!/bin/sh\nexec "$@"\n', { mode: 0o755 });
  writeFileSync(join(bin, 'buildkite-agent'), `#!/bin/sh\nexec ${agentBin} "$@"\n`, { mode: 0o755 });
  const tokenFile = join(dir, 'agent-token', 'token');
  mkdirSync(join(dir, 'agent-token'));
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o400 });
  // tini is PID 1 in the pod; here the shell it starts is the first process.
  expect(c.command!.slice(0, 2)).toEqual(['/sbin/tini', '--']);
  const termination = join(dir, 'termination-log');
  const command = c
    .command!.slice(2)
    .map((a) => a.replaceAll('/agent-token/', `${dir}/agent-token/`).replaceAll('/dev/termination-log', termination));
  const args = c.args!.map((a) =>
    a.startsWith('--disconnect-after-idle-timeout=') ? `--disconnect-after-idle-timeout=${idleTimeout}` : a,
  );
  // The image's BUILDKITE_AGENT_CONFIG file, empty: everything comes from the environment.
  writeFileSync(join(dir, 'buildkite-agent.cfg'), '');
  const env = containerEnv(c.env!, { POD_NAME: 'cia-default-0', CI_CACHE_URL: '' });
  for (const k of ['BUILDKITE_BUILD_PATH', 'BUILDKITE_PLUGINS_PATH', 'BUILDKITE_ADDITIONAL_HOOKS_PATHS'] as const) {
    env[k] = join(dir, k.toLowerCase());
    mkdirSync(env[k]!);
  }
  const run = start(
    [...command, ...args],
    {
      ...env,
      PATH: `${bin}:${process.env.PATH}`,
      HOME: dir,
      BUILDKITE_AGENT_ENDPOINT: `${endpoint}/v3`,
      BUILDKITE_AGENT_CONFIG: join(dir, 'buildkite-agent.cfg'),
      ...extraEnv,
    },
    dir,
  );
  const message = () => (existsSync(termination) ? readFileSync(termination, 'utf8') : '');
  return { run, tokenFile, container: c, message };
}

/** The Agent API's answer to /register, as the existing tests give it. */
function registered(url: string) {
  return {
    id: 'agent-1',
    name: 'cia-default-0',
    access_token: 'agent-access-token',
    endpoint: `${url}/v3`,
    ping_interval: 1,
    job_status_interval: 1,
    heartbeat_interval: 60,
    meta_data: ['queue=default'],
  };
}

/**
 * A fake Agent API that registers the agent and, when `command` is given, dispatches it ONE job
 * on its first ping (api/pings.go Ping.Job; the agent then accepts, starts, streams chunks and
 * finishes it: api/jobs.go, api/chunks.go). The job's environment carries what the bootstrap
 * requires (clicommand/bootstrap.go `validate:"required"`) and runs only its command phase
 * (BUILDKITE_BOOTSTRAP_PHASES): no checkout.
 */
async function agentApi(command?: string): Promise<FakeApi> {
  let dispatched = false;
  const server: FakeApi = await fakeApi((req) => {
    const path = req.url!.split('?')[0]!;
    if (path === '/v3/register') return { status: 200, json: registered(server.url) };
    if (path === '/v3/ping') {
      if (command === undefined || dispatched) return { status: 200, json: {} };
      dispatched = true;
      return { status: 200, json: { job: { id: 'job-1' } } };
    }
    if (path === '/v3/jobs/job-1/accept')
      return {
        status: 200,
        json: {
          id: 'job-1',
          state: 'accepted',
          token: 'job-token',
          chunks_max_size_bytes: 102400,
          chunks_interval_seconds: 1,
          env: {
            BUILDKITE_COMMAND: command,
            BUILDKITE_JOB_ID: 'job-1',
            BUILDKITE_BUILD_ID: 'build-1',
            BUILDKITE_AGENT_NAME: 'cia-default-0',
            BUILDKITE_REPO: 'https://github.com/acme/app.git',
            BUILDKITE_COMMIT: 'HEAD',
            BUILDKITE_BRANCH: 'main',
            BUILDKITE_ORGANIZATION_SLUG: 'acme',
            BUILDKITE_PIPELINE_SLUG: 'app',
            BUILDKITE_PIPELINE_PROVIDER: 'github',
            BUILDKITE_BOOTSTRAP_PHASES: 'command',
          },
        },
      };
    if (path === '/v3/jobs/job-1') return { status: 200, json: { state: 'running' } };
    if (path.startsWith('/v3/jobs/job-1/')) return { status: 200, json: {} };
    if (['/v3/connect', '/v3/disconnect', '/v3/heartbeat'].includes(path)) return { status: 200, json: {} };
    return { status: 404, json: { message: 'not found' } };
  });
  return server;
}

async function until(what: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !what() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
  expect(what()).toBe(true);
}

/** The processes below `pid` (children, grandchildren, ...). */
function descendants(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  return children.flatMap((c) => [Number(c), ...descendants(Number(c))]);
}

describe('buildkite-agent with the template command', () => {
  it('a token the API refuses (401): the agent exits non-zero at once, the reason in its last log line', async () => {
    api = await fakeApi(() => ({ status: 401, json: { message: 'Invalid token' } }));
    const { run, container } = await runAgent(api.url, 300);
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    // No termination message file: the kubelet takes the log's tail (FallbackToLogsOnError).
    expect(backoffVerdict(container, exit, '')).toEqual({
      kind: 'failed',
      reason: 'Error',
      message: expect.stringMatching(
        /^container agent exited with code 1: [\s\S]*register: 401 Unauthorized: Invalid token$/,
      ),
      endedAt: expect.any(Number),
    });
    // Within back-off's start window (60 s): the pod is classified as a start failure.
    expect(exit.ms).toBeLessThan(60_000);
    expect(exit.output.trim().split('\n').at(-1)).toMatch(/401/);
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v3/register']);
    expect(api.requests[0]!.authorization).toBe(`Token ${TOKEN}`);
  }, 120_000);

  it('an unreachable API: the pod fails after BUILDKITE_REGISTER_TIMEOUT_SECONDS, not after 5 minutes of retries', async () => {
    api = await fakeApi(() => ({ status: 200 }));
    const url = api.url;
    await api.close();
    api = undefined;
    const { run, container, message } = await runAgent(url, 300, { BUILDKITE_REGISTER_TIMEOUT_SECONDS: '3' });
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    expect(exit.ms).toBeLessThan(30_000);
    expect(message()).toMatch(
      /buildkite-agent did not register within 3s \(http:\/\/127\.0\.0\.1:\d+\/v3 unreachable\?\)/,
    );
    expect(backoffVerdict(container, exit, message())).toMatchObject({ kind: 'failed', reason: 'Error' });
  }, 120_000);

  it('a registered agent that gets no job exits 0 after the idle timeout; no env var, file or descriptor holds the token', async () => {
    api = await fakeApi((req) => {
      const path = req.url!.split('?')[0]!;
      if (path === '/v3/register')
        return {
          status: 200,
          json: {
            id: 'agent-1',
            name: 'cia-default-0',
            access_token: 'agent-access-token',
            endpoint: `${api!.url}/v3`,
            ping_interval: 1,
            job_status_interval: 1,
            heartbeat_interval: 60,
            meta_data: ['queue=default'],
          },
        };
      if (['/v3/connect', '/v3/disconnect', '/v3/heartbeat'].includes(path)) return { status: 200, json: {} };
      if (path === '/v3/ping') return { status: 200, json: {} };
      return { status: 404, json: { message: 'not found' } };
    });
    const { run, tokenFile, container } = await runAgent(api.url, 3);
    // Wait until it has registered and pings, then look at what the job's uid could read.
    for (let i = 0; i < 200 && !api.requests.some((r) => r.path.startsWith('/v3/ping')); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(api.requests.some((r) => r.path.startsWith('/v3/ping'))).toBe(true);
    expect(existsSync(tokenFile)).toBe(false);
    // The shell (tini's child in the pod) and the agent it started: what a job's uid could read.
    const pids = [run.pid, ...descendants(run.pid)];
    expect(pids.length).toBeGreaterThanOrEqual(2);
    let checked = 0;
    for (const pid of pids) {
      // A process that ended meanwhile (the shell's `sleep 1` of its registration wait) exposes nothing.
      let environ: string;
      let fdNames: string[];
      try {
        environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
        fdNames = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      expect(environ).toContain('BUILDKITE_AGENT_TOKEN=fd://3');
      expect(environ).not.toContain(TOKEN);
      const fds = fdNames.map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
      expect(fds.filter((l) => l.includes('agent-token/token'))).toEqual([]);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(2);
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    expect(backoffVerdict(container, exit, '')).toEqual({ kind: 'healthy' });
    expect(api.requests[0]!.authorization).toBe(`Token ${TOKEN}`);
    expect(api.requests.map((r) => r.path)).toContain('/v3/disconnect');
  }, 120_000);

  // The scaler stops a surplus agent by deleting its pod: the kubelet sends SIGTERM to tini, which
  // passes it to the template's shell (what `process.kill(run.pid)` does here).
  it('SIGTERM while idle: the agent disconnects and exits 0 within seconds', async () => {
    api = await agentApi();
    const { run, container } = await runAgent(api.url, 300);
    await until(() => run.output().includes('You can press Ctrl-C to stop the agents'), 30_000);
    await until(() => api!.requests.some((r) => r.path.startsWith('/v3/ping')), 30_000);
    const sent = Date.now();
    process.kill(run.pid, 'SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    expect(Date.now() - sent).toBeLessThan(5_000);
    expect(exit.output).toMatch(/Since there is no job running, the agent will disconnect immediately/);
    expect(api.requests.map((r) => r.path)).toContain('/v3/disconnect');
    expect(backoffVerdict(container, exit, '')).toEqual({ kind: 'healthy' });
  }, 120_000);

  it.each([
    ['0', ''],
    ['3', '; exit 3'],
  ])(
    'SIGTERM during a job: the job runs to its end, its finish (exit %s) reaches the API, then the pod exits 0',
    async (status, tail) => {
      const marker = join(mkdtempSync(join(tmpdir(), 'bk-job-')), 'job-done');
      api = await agentApi(`sleep 4 && echo done > ${marker}${tail}`);
      const { run, container } = await runAgent(api.url, 300);
      await until(() => api!.requests.some((r) => r.path === '/v3/jobs/job-1/start'), 60_000);
      const sent = Date.now();
      process.kill(run.pid, 'SIGTERM');
      const exit = await run.exited;
      expect(exit.code).toBe(0);
      expect(exit.output).toMatch(/Waiting for current job to finish before disconnecting/);
      // The job was not cancelled: it slept its 4 s after the signal and finished with exit 0.
      expect(Date.now() - sent).toBeGreaterThan(3_000);
      const finish = api.requests.find((r) => r.path === '/v3/jobs/job-1/finish');
      expect(JSON.parse(finish!.body)).toMatchObject({ exit_status: status });
      expect(finish!.body).not.toMatch(/"signal"/);
      expect(readFileSync(marker, 'utf8')).toBe('done\n');
      expect(api.requests.map((r) => r.path)).toContain('/v3/disconnect');
      expect(backoffVerdict(container, exit, '')).toEqual({ kind: 'healthy' });
    },
    180_000,
  );

  it('SIGTERM before the agent handles signals (still registering): the pod exits 0 within the 1 s poll of its wait, not 143', async () => {
    // An API that does not answer yet: the agent waits in /register.
    api = await fakeApi(() => ({ status: 503, json: { message: 'unavailable' } }));
    const { run, container } = await runAgent(api.url, 300);
    await until(() => api!.requests.some((r) => r.path === '/v3/register'), 30_000);
    const sent = Date.now();
    process.kill(run.pid, 'SIGTERM');
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    expect(Date.now() - sent).toBeLessThan(2_500);
    expect(exit.output).toMatch(/stop requested before the agent could take a job/);
    expect(backoffVerdict(container, exit, '')).toEqual({ kind: 'healthy' });
  }, 120_000);
});
