/**
 * A deployment with several bad variables learns all of them from one cold start: one ConfigError,
 * a line per variable, its first line (and `variable`) what a single problem would say. The words
 * of an integer's bounds and its check come from one declaration.
 */
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadCacheConfig,
  loadScalerConfig,
  loadWebhookConfig,
  VARIABLES,
} from '../../functions/shared/config.js';

const webhookEnv = { EVENTS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/events' };
const scalerEnv = { ...webhookEnv, LEDGER_TABLE: 'ledger', KUBECONFIG: '/tmp/kubeconfig' };
const cacheEnv = { CACHE_BUCKET: 'bucket', CACHE_TABLE: 'table' };

function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('every invalid variable in one error', () => {
  it('the scaler names each bad variable on its own line, the first as a single problem would', () => {
    const bad = {
      MAX_AGENTS: 'ten',
      KUBE_NAMESPACE: 'CI_Agents',
      SCALER_POLL_SECONDS: '0',
      KUBECONFIG: '',
      GITLAB_API_URL: 'ftp://x',
      WARM_POOL: 'on',
    };
    const e = configError(() => loadScalerConfig({ ...scalerEnv, ...bad }));
    expect(e.name).toBe('ConfigError');
    expect(e.variable).toBe('MAX_AGENTS');
    const lines = e.message.split('\n');
    expect(lines[0]).toBe('MAX_AGENTS must be an integer >= MIN_AGENTS and >= 1, got "ten"');
    expect(lines[0]).toBe(configError(() => loadScalerConfig({ ...scalerEnv, MAX_AGENTS: 'ten' })).message);
    expect(e.problems.map((p) => p.variable)).toEqual([
      'MAX_AGENTS',
      'KUBE_NAMESPACE',
      'SCALER_POLL_SECONDS',
      'KUBECONFIG',
      'GITLAB_API_URL',
      'WARM_POOL',
    ]);
    expect(lines).toEqual(e.problems.map((p) => p.message));
    for (const [i, p] of e.problems.entries()) expect(lines[i]).toContain(p.variable);
    expect(lines[5]).toBe('WARM_POOL must be one of off, adaptive, learned, got "on"');
  });

  it('the webhook and the cache too', () => {
    const w = configError(() =>
      loadWebhookConfig({
        ...webhookEnv,
        QUEUES: 'a,b c',
        LOG_LEVEL: 'loud',
        GITHUB_WEBHOOK_SECRET_PARAMETER: 'ci-github',
        WEBHOOK_MAX_BODY_BYTES: '10',
        BUILDKITE_CLUSTERS: 'not-a-uuid',
      }),
    );
    expect(w.problems.map((p) => p.variable)).toEqual([
      'QUEUES',
      'LOG_LEVEL',
      'GITHUB_WEBHOOK_SECRET_PARAMETER',
      'WEBHOOK_MAX_BODY_BYTES',
      'BUILDKITE_CLUSTERS',
    ]);
    expect(w.message.split('\n')).toHaveLength(5);
    const c = configError(() =>
      loadCacheConfig({ ...cacheEnv, CACHE_TABLE: '', CACHE_TOKEN_ISSUER: 'oidc.example', CACHE_PART_BYTES: '1' }),
    );
    expect(c.problems.map((p) => p.variable)).toEqual(['CACHE_TABLE', 'CACHE_TOKEN_ISSUER', 'CACHE_PART_BYTES']);
    expect(c.message.split('\n')[0]).toBe('CACHE_TABLE must be a DynamoDB table name, got ""');
  });

  it('a bound naming an invalid variable blames only that variable', () => {
    const e = configError(() => loadScalerConfig({ ...scalerEnv, MIN_AGENTS: 'x', MAX_AGENTS: '5' }));
    expect(e.problems.map((p) => p.variable)).toEqual(['MIN_AGENTS']);
    expect(e.message).toBe('MIN_AGENTS must be an integer >= 0, got "x"');
  });

  it('one problem is thrown as it is, alone in its problems', () => {
    const e = configError(() => loadScalerConfig({ ...scalerEnv, MIN_AGENTS: '-1' }));
    expect(e.problems).toEqual([e]);
    expect(e.message).not.toContain('\n');
  });
});

describe('an integer variable: one declaration gives its words and its check', () => {
  const ints = VARIABLES.filter((v) => v.int !== undefined && !v.name.startsWith('GITHUB_'));
  const load = (fn: string, env: Record<string, string>) =>
    fn === 'cache'
      ? loadCacheConfig({ ...cacheEnv, ...env })
      : fn === 'webhook'
        ? loadWebhookConfig({ ...webhookEnv, ...env })
        : loadScalerConfig({ ...scalerEnv, ...env });

  it('covers the integers', () => {
    expect(ints.map((v) => v.name)).toContain('MAX_AGENTS');
    expect(ints.length).toBeGreaterThan(15);
  });

  it.each(ints.map((v) => [v.name, v] as const))('%s: below min and above max refused, in the words shown', (_, v) => {
    const fn = v.functions.includes('scaler') ? 'scaler' : (v.functions[0] ?? 'scaler');
    const { min, max, off } = v.int ?? { min: 0 };
    const outside: number[] = [];
    if (typeof min === 'number' && min - 1 !== off) outside.push(min - 1);
    if (typeof max === 'number') outside.push(max + 1);
    for (const n of outside) {
      const e = configError(() => load(fn, { [v.name]: String(n) }));
      expect(e.variable).toBe(v.name);
      expect(e.message).toBe(`${v.name} must be ${v.expected}, got "${n}"`);
    }
    // The bounds themselves are accepted (a variable bounded by this one may then be refused).
    const blamed = (n: number) => {
      try {
        load(fn, { [v.name]: String(n) });
        return [];
      } catch (e) {
        return (e as ConfigError).problems.map((p) => p.variable);
      }
    };
    if (typeof min === 'number') expect(blamed(min)).not.toContain(v.name);
    if (typeof max === 'number') expect(blamed(max)).not.toContain(v.name);
  });

  it('a bound naming a variable names a declared integer', () => {
    const names = new Set(VARIABLES.filter((v) => v.int).map((v) => v.name as string));
    for (const v of VARIABLES) {
      for (const b of [v.int?.min, v.int?.max]) if (typeof b === 'string') expect(names).toContain(b);
    }
  });
});
