import { describe, expect, it } from 'vitest';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';

function fakeSsm(values: string[]) {
  const calls: string[] = [];
  let i = 0;
  return {
    calls,
    fetch: async (name: string) => {
      calls.push(name);
      const value = values[Math.min(i++, values.length - 1)]!;
      if (value === 'FAIL') throw new Error('SSM down');
      return value;
    },
  };
}

describe('SecretStore', () => {
  it('plain values need no SSM; disabled providers are reported disabled', async () => {
    const ssm = fakeSsm(['x']);
    const store = new SecretStore(
      { a: { kind: 'value', value: 'plain' }, b: { kind: 'disabled' } },
      { fetchParameter: ssm.fetch },
    );
    expect(store.enabled('a')).toBe(true);
    expect(store.enabled('b')).toBe(false);
    expect(await store.get('a')).toBe('plain');
    expect(await store.refresh('a')).toBeUndefined();
    await expect(store.get('b')).rejects.toThrow(/not configured/);
    expect(ssm.calls).toEqual([]);
  });

  it('fetches a parameter once per container, sharing concurrent fetches', async () => {
    const ssm = fakeSsm(['s1']);
    const store = new SecretStore({ gh: { kind: 'parameter', name: '/ci/github' } }, { fetchParameter: ssm.fetch });
    const values = await Promise.all([store.get('gh'), store.get('gh'), store.get('gh')]);
    expect(values).toEqual(['s1', 's1', 's1']);
    expect(await store.get('gh')).toBe('s1');
    expect(ssm.calls).toEqual(['/ci/github']);
  });

  it('refresh picks up a rotated secret, at most once per interval', async () => {
    let clock = 0;
    const ssm = fakeSsm(['old', 'new', 'newer']);
    const store = new SecretStore(
      { gh: { kind: 'parameter', name: 'p' } },
      { fetchParameter: ssm.fetch, minRefreshIntervalMs: 10_000, now: () => clock },
    );
    expect(await store.get('gh')).toBe('old');
    clock = 1_000;
    expect(await store.refresh('gh')).toBeUndefined(); // too soon: a flood of bad signatures cannot hammer SSM
    expect(ssm.calls.length).toBe(1);
    clock = 11_000;
    expect(await store.refresh('gh')).toBe('new');
    expect(await store.get('gh')).toBe('new');
    for (let t = 11_001; t < 21_000; t += 500) {
      clock = t;
      await store.refresh('gh');
    }
    expect(ssm.calls.length).toBe(2);
  });

  it('a failed refresh keeps the cached secret; a failed first fetch is retried at most once a second', async () => {
    let clock = 0;
    const ssm = fakeSsm(['FAIL', 'FAIL', 'ok', 'FAIL']);
    const store = new SecretStore(
      { gl: { kind: 'parameter', name: 'p' } },
      { fetchParameter: ssm.fetch, minRefreshIntervalMs: 10_000, now: () => clock },
    );
    await expect(store.get('gl')).rejects.toThrow(/SSM down/);
    clock = 500;
    await expect(store.get('gl')).rejects.toThrow(/SSM down/);
    expect(ssm.calls.length).toBe(1);
    clock = 1_500;
    await expect(store.get('gl')).rejects.toThrow(/SSM down/);
    clock = 3_000;
    expect(await store.get('gl')).toBe('ok');
    clock = 20_000;
    expect(await store.refresh('gl')).toBeUndefined();
    expect(await store.get('gl')).toBe('ok');
    expect(ssm.calls.length).toBe(4);
  });
});
