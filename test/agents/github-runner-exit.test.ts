/**
 * The GitHub template's runner script against a stand-in `bin/Runner.Listener` that exits with
 * the codes the real listener uses (actions/runner src/Runner.Common/Constants.cs ReturnCode,
 * src/Runner.Listener/Program.cs). actions/runner is .NET, so instead of building it, the mapping
 * its own wrapper applies is reproduced below from src/Misc/layoutroot/run-helper.sh.template
 * (and run.sh, which restarts on 2 and otherwise exits with the helper's code).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Container } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { backoffVerdict, type Exit, ended } from './support.js';

/** What run-helper.sh.template exits with for a listener exit code (then run.sh: 2 restarts). */
function upstreamRunHelperExit(listenerCode: number): number {
  if (listenerCode === 0) return 0; // "stop the service, no retry needed"
  if (listenerCode === 1) return 0; // "terminated error, stop the service, no retry needed"
  if (listenerCode === 2 || listenerCode === 3 || listenerCode === 4) return 2; // re-launch
  if (listenerCode === 5) return 0; // "Session Conflict error, stop the service"
  // 7 only with ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1, else "unknown error code": 0.
  return 0;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
// AgentName "r???" puts a "/" into the base64 of the settings (escaped as "\/" by some JSON writers).
const runnerSettings = { AgentId: 7, AgentName: 'r???', PoolId: 1, ServerUrl: 'https://pipelines', Ephemeral: true };
const settingsB64 = b64(JSON.stringify(runnerSettings));
const jitConfig = b64(JSON.stringify({ '.runner': settingsB64, '.credentials': b64('{"scheme":"OAuth"}') }));

async function runnerScript(): Promise<{ script: string; env: Record<string, string>; container: V1Container }> {
  const job = buildAgentJob(await loadTemplate('github'), {
    namespace: 'ci-agents',
    queue: 'default',
    dispatchId: 'd1',
    jobName: jobNameFor('default', 'd1'),
    count: 1,
    ttlSecondsAfterFinished: 600,
    activeDeadlineSeconds: 7200,
  });
  const c = job.spec!.template.spec!.containers.find((x) => x.name === 'runner')!;
  expect(c.command).toEqual(['/bin/bash', '-c']);
  expect(c.terminationMessagePolicy).toBe('FallbackToLogsOnError');
  const env = Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  return { script: c.args![0]!, env, container: c };
}

interface Run extends Exit {
  readonly terminationMessage: string;
  readonly listenerSaw: string;
  readonly starts: number;
  readonly container: V1Container;
}

/**
 * Runs the rendered script in a scratch runner directory; the listener exits with `codes` in turn.
 * `terminateWhen`: the pod gets SIGTERM once the output matches it, or after that many ms (its `ms`
 * then counts from the signal).
 */
async function run(
  codes: readonly (number | 'hang' | 'straggler' | 'unreachable' | 'config' | 'job')[],
  extraEnv: Record<string, string> = {},
  jit = jitConfig,
  terminateWhen?: RegExp | number,
): Promise<Run> {
  const { script, env, container } = await runnerScript();
  const started = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'gh-runner-'));
  const input = join(root, 'runner-input');
  const home = join(root, 'home');
  mkdirSync(input);
  mkdirSync(join(home, 'bin'), { recursive: true });
  writeFileSync(join(input, 'jitconfig'), jit);
  writeFileSync(join(root, 'codes'), codes.join('\n'));
  const listener = join(home, 'bin', 'Runner.Listener');
  writeFileSync(
    listener,
    [
      '#!/bin/bash',
      // A real listener writes the JIT configuration's files on its first start only.
      `[ -n "\${ACTIONS_RUNNER_INPUT_JITCONFIG:-}" ] && printf '%s' "$ACTIONS_RUNNER_INPUT_JITCONFIG" > ${root}/listener-saw`,
      `n=$(( $(cat ${root}/starts 2>/dev/null || echo 0) + 1 )); echo $n > ${root}/starts`,
      `code=$(sed -n "\${n}p" ${root}/codes)`,
      // SIGINT (Ctrl-C) while configuring exits 1 (Runner.cs CtrlCHandler, _inConfigStage);
      // afterwards it shuts the runner down and the listener exits 0 (Program.cs).
      // The listener waits on timers and HTTP, no child shares its output: its waits here do not hold
      // the log open (`quiet`), except with `straggler`, which leaves a child that keeps it open.
      'quiet() { "$@" > /dev/null 2>&1; }',
      'if [ "$code" = config ]; then trap "echo Exiting...; exit 1" INT; quiet sleep 600 & wait; exit 1; fi',
      // A session is created ("Listening for Jobs", Runner.cs) unless the code is `unreachable`.
      'if [ "$code" = unreachable ]; then echo "Runner connect error: No such host. Retrying until reconnected."; trap "exit 0" INT; quiet sleep 600 & wait; exit 0; fi',
      'echo "$(date -u "+%F %TZ"): Listening for Jobs"',
      'if [ "$code" = hang ]; then trap "echo Exiting...; exit 0" INT; quiet sleep 600 & wait; exit 0; fi',
      'if [ "$code" = straggler ]; then trap "echo Exiting...; exit 0" INT; sleep 30 & quiet sleep 600 & wait; exit 0; fi',
      // `job`: a job comes after 1 s and runs 3 s (JobDispatcher.RunAsync's lines); SIGINT
      // shuts the runner down, which cancels the job (Runner.cs: jobDispatcher.ShutdownAsync).
      'if [ "$code" = job ]; then',
      '  trap \'echo "$(date -u "+%F %TZ"): Job build completed with result: Canceled"; exit 0\' INT',
      '  sleep 1',
      '  echo "$(date -u "+%F %TZ"): Running job: build"',
      '  quiet sleep 3 & wait $!',
      '  echo "$(date -u "+%F %TZ"): Job build completed with result: Succeeded"',
      '  exit 0',
      'fi',
      '[ "$code" = 3 ] || [ "$code" = 4 ] && touch update.finished',
      'exit "$code"',
    ].join('\n'),
  );
  chmodSync(listener, 0o755);
  const rendered = script.replaceAll('/runner-input', input).replaceAll('/dev/termination-log', join(root, 'term'));
  const child = spawn('/bin/bash', ['-c', rendered], {
    cwd: home,
    env: { PATH: process.env.PATH!, ...env, ...extraEnv },
    // No socket on stdin: bash would take it for sshd's and read ~/.bashrc.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let terminatedAt: number | undefined;
  const terminate = () => {
    if (terminatedAt !== undefined) return;
    terminatedAt = Date.now();
    child.kill('SIGTERM');
  };
  if (typeof terminateWhen === 'number') setTimeout(terminate, terminateWhen);
  const seen = (d: Buffer) => {
    output += d;
    if (terminateWhen instanceof RegExp && terminateWhen.test(output)) terminate();
  };
  child.stdout.on('data', seen);
  child.stderr.on('data', seen);
  const { code, at: exitedAt } = await ended(child);
  const read = (f: string) => (existsSync(join(root, f)) ? readFileSync(join(root, f), 'utf8') : '');
  return {
    code,
    output,
    ms: exitedAt - (terminatedAt ?? started),
    container,
    terminationMessage: read('term'),
    listenerSaw: read('listener-saw'),
    starts: Number(read('starts') || 0),
  };
}

describe('GitHub runner template: a runner that could not connect ends Failed', () => {
  it.each([
    [1, /could not connect \(JIT configuration invalid or already used/],
    [5, /session conflict/],
    [7, /version deprecated/],
    [42, /exited 42/],
  ])(
    'listener exit %i: run-helper.sh would exit 0, the pod exits non-zero with the reason',
    async (listener, reason) => {
      expect(upstreamRunHelperExit(listener)).toBe(0);
      const r = await run([listener]);
      expect(r.code).toBe(listener);
      expect(r.terminationMessage).toMatch(reason);
      expect(r.starts).toBe(1);
      // Back-off counts it as a start failure, with that reason in its warn line.
      const verdict = backoffVerdict(r.container, r, r.terminationMessage);
      expect(verdict).toMatchObject({ kind: 'failed', reason: 'Error' });
      expect(verdict.kind === 'failed' && verdict.message).toMatch(
        new RegExp(`^container runner exited with code ${listener}: runner listener exited ${listener}`),
      );
    },
  );

  it('listener exit 0 (ran its one job) exits 0', async () => {
    expect(upstreamRunHelperExit(0)).toBe(0);
    const r = await run([0]);
    expect(r.code).toBe(0);
    expect(r.terminationMessage).toBe('');
  });

  it('a self-update (4) or retryable error (2) restarts the listener like run.sh, then its own code counts', async () => {
    expect(upstreamRunHelperExit(4)).toBe(2);
    const updated = await run([4, 0]);
    expect([updated.code, updated.starts]).toEqual([0, 2]);
    const broken = await run([2, 1]);
    expect([broken.code, broken.starts]).toEqual([1, 2]);
  }, 30_000);

  it('a listener that never connects (GitHub unreachable) fails after RUNNER_CONNECT_TIMEOUT_SECONDS', async () => {
    const r = await run(['unreachable'], { RUNNER_CONNECT_TIMEOUT_SECONDS: '2' });
    expect(r.code).toBe(1);
    expect(r.terminationMessage).toMatch(/did not connect to GitHub within 2s/);
    expect(backoffVerdict(r.container, r, r.terminationMessage)).toMatchObject({ kind: 'failed', reason: 'Error' });
    // A connected listener waiting for a job is not stopped by that timeout.
    const idle = await run(['hang'], { RUNNER_CONNECT_TIMEOUT_SECONDS: '1', RUNNER_IDLE_TIMEOUT_SECONDS: '3' });
    expect(idle.code).toBe(0);
    expect(idle.output).toMatch(/Listening for Jobs[\s\S]*no job within 3s/);
  });

  it('an idle runner is stopped after RUNNER_IDLE_TIMEOUT_SECONDS and exits 0', async () => {
    const r = await run(['hang'], { RUNNER_IDLE_TIMEOUT_SECONDS: '0' });
    expect(r.code).toBe(0);
    expect(r.output).toMatch(/no job within 0s: stopping the runner/);
  });

  it('the runner is pinned: the JIT configuration reaches the listener with DisableUpdate in its .runner', async () => {
    const r = await run([0]);
    const files = JSON.parse(Buffer.from(r.listenerSaw, 'base64').toString()) as Record<string, string>;
    expect(JSON.parse(Buffer.from(files['.runner']!, 'base64').toString())).toEqual({
      DisableUpdate: true,
      ...runnerSettings,
    });
    expect(files['.credentials']).toBe(b64('{"scheme":"OAuth"}'));
  });

  it('pins a JIT configuration whose JSON escapes "/" too; leaves one it cannot read as it is', async () => {
    expect(settingsB64).toContain('/');
    const escaped = b64(
      JSON.stringify({ '.runner': settingsB64, '.credentials': b64('{"scheme":"OAuth"}') }).replaceAll('/', '\\/'),
    );
    const r = await run([0], {}, escaped);
    const files = JSON.parse(Buffer.from(r.listenerSaw, 'base64').toString()) as Record<string, string>;
    expect(JSON.parse(Buffer.from(files['.runner']!, 'base64').toString())).toEqual({
      DisableUpdate: true,
      ...runnerSettings,
    });
    const odd = b64('{".runner":"bm90IGpzb24="}');
    const kept = await run([0], {}, odd);
    expect(kept.listenerSaw).toBe(odd);
    expect(kept.output).toMatch(/cannot pin the runner version/);
  });
});

// The scaler stops a surplus agent by deleting its pod: the kubelet sends SIGTERM to the script
// (PID 1 of the container). SIGTERM or SIGINT to the listener shuts it down and CANCELS a running
// job (Runner.cs Runner_Unloading/CtrlCHandler: ShutdownRunner; JobDispatcher cancels the worker),
// so the script stops only a runner that has not taken a job.
describe('GitHub runner template: SIGTERM stops an idle runner, never a running job', () => {
  it('SIGTERM while listening for jobs: the listener is interrupted and the pod exits 0 within seconds', async () => {
    const r = await run(['hang'], {}, jitConfig, /Listening for Jobs/);
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(3_000);
    expect(r.output).toMatch(/stop requested: stopping the idle runner[\s\S]*Exiting\.\.\./);
    expect(r.terminationMessage).toBe('');
    expect(backoffVerdict(r.container, r, r.terminationMessage)).toEqual({ kind: 'healthy' });
  });

  it('a child of the listener that keeps its output open holds the stopped pod 5 s at most', async () => {
    const r = await run(['straggler'], {}, jitConfig, /Listening for Jobs/);
    expect(r.code).toBe(0);
    expect(r.ms).toBeGreaterThan(4_500);
    expect(r.ms).toBeLessThan(8_000);
    expect(r.output).toMatch(/stop requested: stopping the idle runner[\s\S]*Exiting\.\.\./);
  }, 20_000);

  it('SIGTERM after "Running job:": not forwarded, the job runs to its end, the pod exits 0', async () => {
    const r = await run(['job'], {}, jitConfig, /Running job: build/);
    expect(r.code).toBe(0);
    expect(r.output).toMatch(/stop requested: the runner has taken a job; it exits when the job ends/);
    expect(r.output).toMatch(/Job build completed with result: Succeeded/);
    expect(r.output).not.toMatch(/Canceled/);
    expect(r.ms).toBeGreaterThan(2_000);
    expect(r.starts).toBe(1);
  }, 30_000);

  it('SIGTERM before the runner has a session (its Ctrl-C exits 1 while configuring): the pod exits 0, not Failed', async () => {
    const r = await run(['config'], {}, jitConfig, 500);
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(3_000);
    expect(r.terminationMessage).toBe('');
    expect(r.starts).toBe(1);
  });

  it('SIGTERM while the listener is being restarted (exit 2): it is not started again, the pod exits 0', async () => {
    const r = await run([2, 'hang'], {}, jitConfig, /exited 2: restarting/);
    expect(r.code).toBe(0);
    expect(r.starts).toBe(1);
    expect(r.terminationMessage).toBe('');
  }, 30_000);
});
