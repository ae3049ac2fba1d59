/**
 * The Buildkite plugin cache hooks (infra/k8s/cache/buildkite-hooks) run as the agent runs them:
 * sourced by bash -e (the agent's hook wrapper sources shell hooks), the `environment` hook before
 * the plugin phase and `pre-checkout` after it. The plugin phase in between is played by
 * `pluginPhase` below, a transcription of buildkite-agent's checkoutPlugin (internal/job/plugin.go:
 * reuse <plugins-path>/<agent-name>/<Identifier()> when its .git exists, else `git clone` and
 * `git checkout -f VERSION`), cloning from local bare repositories that stand in for the git host.
 * ci-cache is test/support/fake-ci-cache (same CLI, immutable keys, the same paths). Each "pod"
 * gets a fresh plugins directory at the same path, as an emptyDir does.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';

const HOOKS = join(PROJECT_ROOT, 'infra/k8s/cache/buildkite-hooks');
const FAKE_CACHE = join(PROJECT_ROOT, 'test/support/fake-ci-cache');

let root: string;
let plugins: string; // BUILDKITE_PLUGINS_PATH, the same absolute path in every pod
let cacheDir: string;
let bin: string;
const repos = new Map<string, string>(); // plugin location (host/path) -> bare repository
let clones: string[] = [];

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
  }).trim();

/** A plugin repository with a tag v1.0.0 and, later, a commit on main that moves the branch. */
function pluginRepo(location: string): { tagCommit: string; bare: string } {
  const work = join(root, 'src', location.replaceAll('/', '_'));
  const bare = `${work}.git`;
  mkdirSync(join(work, 'hooks'), { recursive: true });
  git(work, 'init', '-q');
  writeFileSync(join(work, 'hooks', 'command'), 'echo v1\n');
  git(work, 'add', '-A');
  git(work, 'commit', '-q', '-m', 'v1');
  git(work, 'tag', 'v1.0.0');
  const tagCommit = git(work, 'rev-parse', 'HEAD');
  git(root, 'clone', '-q', '--bare', work, bare);
  repos.set(location, bare);
  return { tagCommit, bare };
}

function pushToMain(location: string, content: string): string {
  const work = join(root, 'src', location.replaceAll('/', '_'));
  writeFileSync(join(work, 'hooks', 'command'), content);
  git(work, 'commit', '-q', '-am', content);
  git(work, 'push', '-q', repos.get(location)!, 'main');
  return git(work, 'rev-parse', 'HEAD');
}

/** buildkite-agent's Plugin.Identifier() (agent/plugin/plugin.go), for the test's agent. */
function identifier(location: string, version: string): string {
  const label = version ? `${location}#${version}` : location;
  return label
    .replace(/[^a-zA-Z0-9]/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function parsePlugin(spec: string): { location: string; version: string; repository: string } {
  const url = new URL(spec.includes('://') ? spec : `https://${spec}`);
  const location = url.host + url.pathname;
  const auth = url.username ? `${url.username}${url.password ? `:${url.password}` : ''}@` : '';
  return { location, version: url.hash.slice(1), repository: `${url.protocol}//${auth}${location}` };
}

/** The agent's plugin phase for one pod: reuse a checkout with .git, else clone (counted). */
function pluginPhase(agentName: string, specs: string[]): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const spec of specs) {
    const { location, version, repository } = parsePlugin(spec);
    const dir = join(plugins, agentName, identifier(location, version));
    if (!existsSync(join(dir, '.git'))) {
      mkdirSync(join(plugins, agentName), { recursive: true });
      const tmp = mkdtempSync(join(plugins, 'tmp-'));
      execFileSync('git', ['clone', '-q', '--', repos.get(location)!, '.'], { cwd: tmp });
      // The remote the real agent's clone has: Plugin.Repository(), credentials included.
      execFileSync('git', ['config', 'remote.origin.url', repository], { cwd: tmp });
      if (version)
        execFileSync('git', ['-c', 'advice.detachedHead=false', 'checkout', '-q', '-f', version], { cwd: tmp });
      execFileSync('mv', [tmp, dir]);
      clones.push(`${agentName} ${spec}`);
    }
    dirs.set(spec, dir);
  }
  return dirs;
}

function hook(name: 'environment' | 'pre-checkout', env: Record<string, string>) {
  // The agent's POSIX hook wrapper sources the hook; its shell is bash -e -c by default.
  const r = spawnSync('/bin/bash', ['-e', '-c', `. "${join(HOOKS, name)}"`], {
    env: {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: root,
      CI_CACHE_HOOKS_DIR: HOOKS,
      CI_CACHE_URL: 'http://cache.invalid',
      FAKE_CACHE_DIR: cacheDir,
      BUILDKITE_PLUGINS_PATH: plugins,
      ...env,
    },
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr };
}

/** One agent pod running one job: environment hook, plugin phase, pre-checkout hook. */
function runJob(pod: string, specs: (string | Record<string, unknown>)[], env: Record<string, string> = {}) {
  rmSync(plugins, { recursive: true, force: true }); // a new pod: an empty plugins emptyDir
  mkdirSync(plugins, { recursive: true });
  const base = {
    BUILDKITE_AGENT_NAME: pod,
    BUILDKITE_JOB_ID: `job-${pod}`,
    BUILDKITE_PLUGINS: JSON.stringify(specs),
    ...env,
  };
  const before = hook('environment', base);
  const names = specs.map((s) => (typeof s === 'string' ? s : Object.keys(s)[0]!));
  const dirs = pluginPhase(
    pod,
    names.filter((n) => !n.startsWith('.')),
  );
  const after = hook('pre-checkout', base);
  return { before, after, dirs };
}

const calls = () =>
  existsSync(join(cacheDir, 'calls'))
    ? readFileSync(join(cacheDir, 'calls'), 'utf8').trim().split('\n').filter(Boolean)
    : [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'bk-plugin-cache-'));
  plugins = join(root, 'buildkite', 'plugins');
  bin = join(root, 'bin');
  mkdirSync(bin);
  execFileSync('cp', [FAKE_CACHE, join(bin, 'ci-cache')]);
  // `date +%s` answers FAKE_NOW when set: the hook's time windows for mutable versions.
  writeFileSync(
    join(bin, 'date'),
    '#!/bin/sh\nif [ "$1" = +%s ] && [ -n "$FAKE_NOW" ]; then echo "$FAKE_NOW"; else exec env -u FAKE_NOW PATH=/usr/bin:/bin date "$@"; fi\n',
    { mode: 0o755 },
  );
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeEach(() => {
  cacheDir = join(root, `cache-${Math.random().toString(36).slice(2)}`);
  mkdirSync(cacheDir);
  clones = [];
});

describe('Buildkite plugin checkouts through the build cache', () => {
  const HELLO = 'github.com/acme/hello-buildkite-plugin';
  let tagCommit: string;
  beforeAll(() => {
    ({ tagCommit } = pluginRepo(HELLO));
  });

  it('a tagged plugin is cloned by the first pod only; later pods get the same checkout from the cache', () => {
    const spec = `${HELLO}#v1.0.0`;
    const first = runJob('pod-a', [{ [spec]: { message: 'hi' } }]);
    expect(first.before.status).toBe(0);
    expect(first.after.status).toBe(0);
    expect(clones).toEqual([`pod-a ${spec}`]);
    for (const pod of ['pod-b', 'pod-c']) {
      const job = runJob(pod, [{ [spec]: { message: 'hi' } }]);
      expect(job.before.stderr).toMatch(/restored github-com-acme-hello-buildkite-plugin-v1-0-0/);
      const dir = job.dirs.get(spec)!;
      expect(dir).toBe(join(plugins, pod, 'github-com-acme-hello-buildkite-plugin-v1-0-0'));
      expect(git(dir, 'rev-parse', 'HEAD')).toBe(tagCommit);
      expect(readFileSync(join(dir, 'hooks', 'command'), 'utf8')).toBe('echo v1\n');
      expect(git(dir, 'status', '--porcelain')).toBe('');
    }
    expect(clones).toHaveLength(1);
    // One save (the miss), and no save after a hit. The key is immutable: no time window.
    const saves = calls().filter((c) => c.startsWith('save '));
    expect(saves).toHaveLength(1);
    expect(saves[0]).toMatch(/^save bk-plugin\/github-com-acme-hello-buildkite-plugin-v1-0-0\/[0-9a-f]{16} /);
    // Nothing is left in the staging area of the plugins volume.
    expect(readdirSync(join(plugins, '.ci-cache'))).toEqual([]);
  });

  it('pods that miss at the same time each clone, the first save wins, and later pods get that one', () => {
    const spec = `${HELLO}#${tagCommit}`;
    rmSync(plugins, { recursive: true, force: true });
    mkdirSync(plugins, { recursive: true });
    const env = (pod: string) => ({
      BUILDKITE_AGENT_NAME: pod,
      BUILDKITE_JOB_ID: `job-${pod}`,
      BUILDKITE_PLUGINS: JSON.stringify([spec]),
    });
    // Interleaved: both restore (miss), both clone, both save.
    hook('environment', env('pod-x'));
    hook('environment', env('pod-y'));
    pluginPhase('pod-x', [spec]);
    pluginPhase('pod-y', [spec]);
    expect(hook('pre-checkout', env('pod-x')).stderr).toMatch(/saved/);
    const second = hook('pre-checkout', env('pod-y'));
    expect(second.status).toBe(0);
    expect(second.stderr).toMatch(/exists/);
    expect(clones).toHaveLength(2);
    const later = runJob('pod-z', [spec]);
    expect(clones).toHaveLength(2);
    expect(git(later.dirs.get(spec)!, 'rev-parse', 'HEAD')).toBe(tagCommit);
  });

  it('a branch is cached only for its time window, then cloned again and the new commit is seen', () => {
    const spec = `${HELLO}#main`;
    const t0 = { FAKE_NOW: String(3600 * 1000 + 10), CI_CACHE_PLUGINS_MUTABLE_TTL: '3600' };
    runJob('pod-1', [spec], t0);
    runJob('pod-2', [spec], { ...t0, FAKE_NOW: String(3600 * 1000 + 3000) }); // same window: hit
    expect(clones).toEqual([`pod-1 ${spec}`]);
    const moved = pushToMain(HELLO, 'echo v2\n');
    const next = runJob('pod-3', [spec], { ...t0, FAKE_NOW: String(3600 * 1001 + 1) }); // next window
    expect(clones).toEqual([`pod-1 ${spec}`, `pod-3 ${spec}`]);
    expect(git(next.dirs.get(spec)!, 'rev-parse', 'HEAD')).toBe(moved);
    const keys = calls()
      .filter((c) => c.startsWith('save '))
      .map((c) => c.split(' ')[1]);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/\/t1000$/);
    expect(keys[1]).toMatch(/\/t1001$/);
  });

  it('puts checkouts where the agent looks: its Identifier() of the location, under the agent name', () => {
    // Expected identifiers are the agent's own test cases (agent/plugin/plugin_test.go).
    const mono = 'github.com/buildkite/plugins/docker-compose/beta';
    const bare = pluginRepo(mono).bare;
    repos.set(mono, bare);
    runJob('pod-m1', [`${mono}#main`]);
    const job = runJob('pod-m2', [`${mono}#main`]);
    expect(job.before.stderr).toMatch(/restored github-com-buildkite-plugins-docker-compose-beta-main/);
    expect(existsSync(join(plugins, 'pod-m2', 'github-com-buildkite-plugins-docker-compose-beta-main', '.git'))).toBe(
      true,
    );
    expect(clones).toHaveLength(1);
  });

  it('a plugin URL with credentials is cached under a key without them, and the saved copy has none', () => {
    const spec = `https://x-token:s3cret@${HELLO}#v1.0.0`;
    runJob('pod-s', [spec]);
    expect(calls().join('\n')).not.toContain('s3cret');
    const entries = readdirSync(join(cacheDir, 'entries'));
    expect(entries).toHaveLength(1);
    const listing = execFileSync(
      'tar',
      ['-xOf', join(cacheDir, 'entries', entries[0]!), '--wildcards', '*/.git/config'],
      {
        encoding: 'utf8',
      },
    );
    expect(listing).not.toContain('s3cret');
  });

  it('an entry for a commit id that holds another commit is ignored and the agent clones the right one', () => {
    const spec = `${HELLO}#${tagCommit}`;
    // Another job of the same scope saved something else under the plugin's key first.
    const id = identifier(HELLO, tagCommit);
    const staged = join(plugins, '.ci-cache', id);
    rmSync(plugins, { recursive: true, force: true });
    mkdirSync(staged, { recursive: true });
    execFileSync('git', ['clone', '-q', '--', repos.get(HELLO)!, '.'], { cwd: staged }); // main, not the tag
    expect(git(staged, 'rev-parse', 'HEAD')).not.toBe(tagCommit);
    const digest = createHash('sha256').update(`https://${HELLO}#${tagCommit}`).digest('hex').slice(0, 16);
    const key = `bk-plugin/${id}/${digest}`;
    execFileSync(join(bin, 'ci-cache'), ['save', key, staged], { env: { ...process.env, FAKE_CACHE_DIR: cacheDir } });
    const job = runJob('pod-p', [spec]);
    expect(job.before.stderr).toMatch(/is not at commit .* ignored/);
    expect(clones).toEqual([`pod-p ${spec}`]);
    expect(git(job.dirs.get(spec)!, 'rev-parse', 'HEAD')).toBe(tagCommit);
  });

  it('never fails the job: cache down, bad JSON, no CI_CACHE_URL, no jq; vendored and zip plugins are left alone', () => {
    const spec = `${HELLO}#v1.0.0`;
    writeFileSync(join(cacheDir, 'down'), '');
    const down = runJob('pod-d', [spec]);
    expect([down.before.status, down.after.status]).toEqual([0, 0]);
    expect(down.before.stderr).toMatch(/warning/);
    expect(clones).toHaveLength(1);
    rmSync(join(cacheDir, 'down'));

    for (const plugins of ['[{"x"', '{"github.com/a/b#v1": {"x": 1}}']) {
      const bad = hook('environment', { BUILDKITE_AGENT_NAME: 'p', BUILDKITE_PLUGINS: plugins });
      expect(bad.status).toBe(0);
      expect(bad.stderr).toMatch(/not valid JSON/);
    }

    const before = calls().length;
    const off = runJob('pod-off', [spec], { CI_CACHE_URL: '' });
    expect([off.before.status, off.after.status]).toEqual([0, 0]);
    expect(`${off.before.stderr}${off.after.stderr}`).toBe('');
    expect(calls()).toHaveLength(before);

    const noJq = hook('environment', {
      BUILDKITE_AGENT_NAME: 'p',
      BUILDKITE_PLUGINS: JSON.stringify([spec]),
      PATH: bin, // ci-cache only: no jq
    });
    expect(noJq.status).toBe(0);

    const others = hook('environment', {
      BUILDKITE_AGENT_NAME: 'p',
      BUILDKITE_PLUGINS: JSON.stringify([
        { './.buildkite/plugins/llamas': null },
        'zip+https://example.com/plugins/my-plugin.zip#v1.0.0',
        'file:///opt/plugins/local',
      ]),
    });
    expect(others.status).toBe(0);
    expect(calls()).toHaveLength(before);
  });
});
