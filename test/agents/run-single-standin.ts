/**
 * A stand-in for `gitlab-runner run-single`, which cannot be built here (tools/agents/build.sh:
 * the Go module proxy refuses nine of its gitlab.com dependencies). It reproduces what the tests
 * rely on, from gitlab-runner's source (gitlab.com/gitlab-org/gitlab-runner at
 * v1.11.1-0.20260903214710-fc1f1862bd91):
 * - commands/single.go Execute/processBuild/checkFinishedConditions: ask for a job; "not
 *   healthy" logs `Runner is not healthy!` and waits NotHealthyCheckInterval (300 s,
 *   common/consts.go) or a stop signal; no job waits CheckInterval (3 s); after --wait-timeout
 *   seconds without a job it logs `This runner has not received a job in N seconds, so now
 *   exiting` and exits 0;
 * - commands/single.go waitForInterrupts: the first SIGQUIT logs `Requested quit, waiting for
 *   builds to finish` and only ends the loop (no new job is asked for; a build, or the wait after
 *   an empty answer, goes on); SIGTERM/SIGINT (first, or after SIGQUIT) log `Requested exit: ...`,
 *   end the loop and ABORT the build (the abort channel: common/build.go Run fails the job with
 *   failure_reason runner_interrupted). Either way run-single then exits 0;
 * - network/gitlab.go RequestJob: POST /api/v4/jobs/request with the token; 201 a job (logged
 *   `Checking for jobs... received`), 204 none, 403 and a client error (unreachable) are
 *   unhealthy, 503 and other statuses healthy; UpdateJob: PUT /api/v4/jobs/:id with the job's
 *   token and state `running`, then `success`, or `failed` with a failure_reason.
 * A build runs the job's `script` step with /bin/sh in the runner's process (the template's
 * Kubernetes executor would run it in a pod); its exit code decides success or script_failure.
 */
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
if (args[0] !== 'run-single') {
  console.error(`stand-in: only run-single, got ${args[0]}`);
  process.exit(2);
}
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const waitTimeout = Number(flag('wait-timeout') ?? 0);
const url = process.env.CI_SERVER_URL ?? '';
const token = process.env.CI_SERVER_TOKEN ?? '';
const log = (level: string, msg: string) => console.log(`${new Date().toISOString()} ${level} ${msg}`);
if (!url) {
  log('FATAL', 'Missing URL');
  process.exit(1);
}
if (!token) {
  log('FATAL', 'Missing Token');
  process.exit(1);
}

let finished = false;
let aborted = false;
let wake: () => void = () => {};
let abortBuild: () => void = () => {};
let quitting = false;
process.on('SIGQUIT', () => {
  finished = true;
  if (aborted) return;
  quitting = true;
  log('WARNING', 'Requested quit, waiting for builds to finish');
});
for (const sig of ['SIGTERM', 'SIGINT'] as const)
  process.on(sig, () => {
    finished = true;
    if (aborted) return;
    aborted = true;
    log(
      'WARNING',
      `Requested exit: ${sig === 'SIGTERM' ? 'terminated' : 'interrupt'}${quitting ? ' (after quit)' : ''}`,
    );
    wake();
    abortBuild();
  });
const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(t);
      resolve();
    };
  });

interface Job {
  readonly id: number;
  readonly token: string;
  readonly steps?: readonly { name: string; script: readonly string[] }[];
}

/** network/gitlab.go UpdateJob. */
async function updateJob(job: Job, update: Record<string, unknown>): Promise<void> {
  await fetch(new URL(`/api/v4/jobs/${job.id}`, url), {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ info: {}, token: job.token, ...update }),
  });
}

/** processBuild after a 201: running, the script, then success or failed. */
async function runBuild(job: Job): Promise<void> {
  await updateJob(job, { state: 'running' });
  const script = (job.steps ?? []).find((s) => s.name === 'script')?.script ?? [];
  const child = spawn('/bin/sh', ['-c', script.join('\n')], { stdio: 'inherit' });
  const ended = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  abortBuild = () => child.kill('SIGKILL');
  if (aborted) abortBuild();
  const code = await ended;
  abortBuild = () => {};
  if (aborted) {
    log('WARNING', 'Job failed: aborted: terminated');
    await updateJob(job, { state: 'failed', failure_reason: 'runner_interrupted' });
  } else if (code === 0) {
    log('INFO', 'Job succeeded');
    await updateJob(job, { state: 'success' });
  } else {
    log('WARNING', `Job failed: exit code ${code}`);
    await updateJob(job, { state: 'failed', failure_reason: 'script_failure', exit_code: code });
  }
}

/** network/gitlab.go RequestJob: [job received, healthy]. */
async function requestJob(): Promise<[Job | undefined, boolean]> {
  let status: number;
  try {
    const res = await fetch(new URL('/api/v4/jobs/request', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, system_id: 's_standin', info: {} }),
    });
    status = res.status;
    if (status === 201) {
      const job = (await res.json()) as Job;
      log('INFO', `Checking for jobs... received  job=${job.id}`);
      return [job, true];
    }
  } catch (e) {
    log('ERROR', `Checking for jobs... client error: ${(e as Error).message}`);
    return [undefined, false];
  }
  if (status === 403) {
    log('ERROR', 'Checking for jobs... forbidden');
    return [undefined, false];
  }
  if (status === 204) return [undefined, true];
  log('WARNING', `Checking for jobs... failed (${status})`);
  return [undefined, true];
}

log('INFO', `Starting runner for ${url} with token ${token.slice(0, 8)} ...`);
let lastBuild = Date.now();
let builds = 0;
while (!finished) {
  const [job, healthy] = await requestJob();
  if (!healthy) {
    log('INFO', 'Runner is not healthy!');
    await sleep(300_000);
  } else if (!job) await sleep(3_000);
  else {
    await runBuild(job);
    builds++;
    lastBuild = Date.now();
  }
  if (builds >= 1) {
    log('INFO', 'This runner has processed its build limit, so now exiting');
    finished = true;
  }
  if (waitTimeout > 0 && (Date.now() - lastBuild) / 1000 > waitTimeout) {
    log('INFO', `This runner has not received a job in ${waitTimeout} seconds, so now exiting`);
    finished = true;
  }
}
process.exit(0);
