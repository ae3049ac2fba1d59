/**
 * A stand-in for `gitlab-runner run-single`, which cannot be built here (tools/agents/build.sh:
 * the Go module proxy refuses nine of its gitlab.com dependencies). It reproduces what the tests
 * rely on, from gitlab-runner's source (gitlab.com/gitlab-org/gitlab-runner at
 * v1.11.1-0.20260903214710-fc1f1862bd91):
 * - commands/single.go Execute/processBuild/checkFinishedConditions: ask for a job; "not
 *   healthy" logs `Runner is not healthy!` and waits NotHealthyCheckInterval (300 s,
 *   common/consts.go) or a stop signal; no job waits CheckInterval (3 s); after --wait-timeout
 *   seconds without a job it logs `This runner has not received a job in N seconds, so now
 *   exiting` and exits 0; SIGTERM/SIGINT end the loop (waitForInterrupts) and it exits 0;
 * - network/gitlab.go RequestJob: POST /api/v4/jobs/request with the token; 201 a job, 204 none,
 *   403 and a client error (unreachable) are unhealthy, 503 and other statuses healthy.
 * It runs no build: a job (201) is logged and counted as its one build.
 */
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
let wake: () => void = () => {};
for (const sig of ['SIGTERM', 'SIGINT'] as const)
  process.on(sig, () => {
    finished = true;
    log('WARNING', `Requested exit: ${sig}`);
    wake();
  });
const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(t);
      resolve();
    };
  });

/** network/gitlab.go RequestJob: [job received, healthy]. */
async function requestJob(): Promise<[boolean, boolean]> {
  let status: number;
  try {
    const res = await fetch(new URL('/api/v4/jobs/request', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, system_id: 's_standin', info: {} }),
    });
    status = res.status;
  } catch (e) {
    log('ERROR', `Checking for jobs... client error: ${(e as Error).message}`);
    return [false, false];
  }
  if (status === 201) return [true, true];
  if (status === 403) {
    log('ERROR', 'Checking for jobs... forbidden');
    return [false, false];
  }
  if (status === 204) return [false, true];
  log('WARNING', `Checking for jobs... failed (${status})`);
  return [false, true];
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
    log('INFO', 'Checking for jobs... received');
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
