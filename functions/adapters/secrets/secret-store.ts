/**
 * Webhook secrets, given plainly (local use) or as an SSM Parameter Store name. A parameter is
 * fetched on first use and cached for the life of the container. When a request fails
 * verification the caller may ask for a refresh (a rotated secret then works without a
 * redeploy); refreshes of one provider are at least `minRefreshIntervalMs` apart, so a flood of
 * bad signatures cannot hammer SSM. Concurrent callers share one in-flight fetch.
 */
import type { SecretSource } from '../../shared/config.js';
import { getSecureParameter } from '../ssm/client.js';

export type FetchParameter = (name: string) => Promise<string>;

export interface SecretStoreOptions {
  readonly fetchParameter?: FetchParameter;
  /** Minimum time between two fetches of the same parameter after the first (default 10 s). */
  readonly minRefreshIntervalMs?: number;
  readonly now?: () => number;
}

interface Entry {
  value?: string;
  fetchedAt: number;
  inFlight?: Promise<string> | undefined;
  /** The last fetch failed and nothing is cached: retried at most once a second. */
  error?: unknown;
}

const FAILED_FETCH_RETRY_MS = 1_000;

export class SecretStore<K extends string = string> {
  private readonly entries = new Map<K, Entry>();
  private readonly fetchParameter: FetchParameter;
  private readonly minRefreshIntervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly sources: Readonly<Record<K, SecretSource>>,
    options: SecretStoreOptions = {},
  ) {
    this.fetchParameter = options.fetchParameter ?? getSecureParameter;
    this.minRefreshIntervalMs = options.minRefreshIntervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  enabled(key: K): boolean {
    return this.sources[key].kind !== 'disabled';
  }

  /** Whether the secret can change without a redeploy (it comes from SSM). */
  refreshable(key: K): boolean {
    return this.sources[key].kind === 'parameter';
  }

  /** The secret value (cached). Throws when the provider is disabled or SSM cannot be read. */
  async get(key: K): Promise<string> {
    const source = this.sources[key];
    if (source.kind === 'disabled') throw new Error(`secret ${key} is not configured`);
    if (source.kind === 'value') return source.value;
    const entry = this.entries.get(key);
    if (entry?.value !== undefined) return entry.value;
    if (entry?.inFlight) return entry.inFlight;
    if (entry?.error !== undefined && this.now() - entry.fetchedAt < FAILED_FETCH_RETRY_MS) throw entry.error;
    return this.fetch(key, source.name);
  }

  /**
   * Fetches the secret again if it comes from SSM and the last fetch is old enough; returns the
   * new value when it differs from the cached one, else undefined (nothing new to try). A failed
   * refresh keeps the cached value.
   */
  async refresh(key: K): Promise<string | undefined> {
    const source = this.sources[key];
    if (source.kind !== 'parameter') return undefined;
    const entry = this.entries.get(key);
    const before = entry?.value;
    if (entry?.inFlight) {
      const value = await entry.inFlight.catch(() => undefined);
      return value !== undefined && value !== before ? value : undefined;
    }
    if (entry && this.now() - entry.fetchedAt < this.minRefreshIntervalMs) return undefined;
    try {
      const value = await this.fetch(key, source.name);
      return value !== before ? value : undefined;
    } catch {
      return undefined;
    }
  }

  private fetch(key: K, name: string): Promise<string> {
    const entry: Entry = this.entries.get(key) ?? { fetchedAt: 0 };
    entry.fetchedAt = this.now();
    const inFlight = this.fetchParameter(name).then(
      (value) => {
        entry.value = value.trim();
        entry.inFlight = undefined;
        entry.error = undefined;
        return entry.value;
      },
      (error: unknown) => {
        entry.inFlight = undefined;
        if (entry.value === undefined) entry.error = error;
        throw error;
      },
    );
    entry.inFlight = inFlight;
    this.entries.set(key, entry);
    return inFlight;
  }
}
