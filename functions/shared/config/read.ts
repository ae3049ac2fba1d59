/**
 * Readers of single variables, checked against their declaration, and the collector that turns
 * every problem found at cold start into one ConfigError.
 */
import { QUEUE_NAME_PATTERN as QUEUE_NAME } from '../../core/job-event.js';
import { type Bound, type Declaration, expectedOf, type VariableSpec } from './declaration.js';
import type { VariableName } from './registry.js';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The environment with the declarations of the variables one function reads: each bundle carries
 * only its own declarations (the webhook's holds no scaler or cache text).
 */
export interface Source {
  readonly vars: Env;
  spec(name: VariableName): VariableSpec;
}

export function source(vars: Env, declarations: readonly Declaration[]): Source {
  const specs = new Map(declarations.map((d) => [d.name, { ...d, expected: expectedOf(d) }]));
  return {
    vars,
    spec(name) {
      const found = specs.get(name);
      if (!found) throw new Error(`${name} is not declared for this function`);
      return found;
    },
  };
}

export class ConfigError extends Error {
  /** Every problem found (this error alone when there was one); each names its variable. */
  readonly problems: readonly ConfigError[];

  constructor(
    readonly variable: string,
    message: string,
    problems?: readonly ConfigError[],
  ) {
    super(message);
    this.name = 'ConfigError';
    this.problems = problems ?? [this];
  }

  /** One error for several problems: the first one's variable and first line, one line each. */
  static of(problems: readonly ConfigError[]): ConfigError {
    const unique = problems.filter((p, i) => problems.findIndex((q) => q.message === p.message) === i);
    const [first] = unique;
    if (!first) throw new Error('ConfigError.of needs at least one problem');
    if (unique.length === 1) return first;
    return new ConfigError(first.variable, unique.map((p) => p.message).join('\n'), unique);
  }
}

/**
 * Collects the problems of independent reads instead of stopping at the first: `take` returns the
 * fallback when a read throws a ConfigError, `done` throws them all as one. A fallback never
 * escapes: a load with a problem ends in `done`'s throw.
 */
export class Problems {
  private readonly found: ConfigError[] = [];

  take<T>(read: () => T, fallback: T): T {
    try {
      return read();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      this.found.push(...e.problems);
      return fallback;
    }
  }

  done(): void {
    if (this.found.length > 0) throw ConfigError.of(this.found);
  }
}

export function fail(env: Source, name: VariableName, expected = env.spec(name).expected): never {
  const raw = env.vars[name];
  const shown = raw === undefined ? 'nothing (unset)' : JSON.stringify(raw);
  throw new ConfigError(name, `${name} must be ${expected}, got ${shown}`);
}

/** Reads a variable, falling back to its default; empty strings count as unset. */
function raw(env: Source, name: VariableName): string | undefined {
  const value = env.vars[name];
  if (value !== undefined && value.trim() !== '') return value.trim();
  return env.spec(name).default;
}

export function required(env: Source, name: VariableName): string {
  return raw(env, name) ?? fail(env, name);
}

export function optional(env: Source, name: VariableName): string | undefined {
  return raw(env, name);
}

/** The values of the integer variables that other variables' bounds name. */
export type Bounds = Readonly<Partial<Record<VariableName, number>>>;

function bound(b: Bound, given: Bounds): number {
  if (typeof b === 'number') return b;
  const value = given[b as VariableName];
  if (value === undefined) throw new Error(`bound ${b} not given`);
  return value;
}

/**
 * An integer within its declared bounds. A bound naming a variable takes its value from `given`;
 * NaN there (that variable was itself invalid) makes the comparison pass, so only it is reported.
 */
export function int(env: Source, name: VariableName, given: Bounds = {}): number {
  const bounds = env.spec(name).int;
  if (!bounds) throw new Error(`${name} is not declared as an integer`);
  const value = raw(env, name);
  if (value === undefined || !/^-?\d+$/.test(value)) return fail(env, name);
  const n = Number(value);
  if (n === bounds.off) return n;
  const min = Math.max(bound(bounds.min, given), bounds.floor ?? Number.NEGATIVE_INFINITY);
  const max = bounds.max === undefined ? Number.MAX_SAFE_INTEGER : bound(bounds.max, given);
  if (n < min || n > max) return fail(env, name);
  return n;
}

/** One of the declared choices, case-insensitive, as declared. */
export function choice<T extends string>(env: Source, name: VariableName): T {
  const choices = env.spec(name).enum;
  if (!choices) throw new Error(`${name} is not declared with choices`);
  const value = required(env, name).toLowerCase();
  return (choices.find((c) => c.toLowerCase() === value) ?? fail(env, name)) as T;
}

export function url(env: Source, name: VariableName): string {
  const value = required(env, name);
  try {
    const parsed = new URL(value);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error('scheme');
  } catch {
    fail(env, name);
  }
  return value;
}

/** A queue name, as QUEUES accepts it. */
export function queueName(env: Source, name: VariableName): string {
  const value = required(env, name);
  if (!QUEUE_NAME.test(value)) fail(env, name);
  return value;
}

export function queueList(env: Source): string[] {
  const names = required(env, 'QUEUES')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0 || names.some((n) => !QUEUE_NAME.test(n))) fail(env, 'QUEUES');
  return [...new Set(names)];
}

/** A comma-separated list, each element checked, lower-cased; undefined when unset. */
export function list(env: Source, name: VariableName, valid: (item: string) => boolean): string[] | undefined {
  const value = optional(env, name);
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0 || items.some((i) => !valid(i))) fail(env, name);
  return [...new Set(items.map((i) => i.toLowerCase()))];
}

/** A secret is either given plainly (local use) or by SSM parameter name; neither disables it. */
export type SecretSource =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'parameter'; readonly name: string }
  | { readonly kind: 'disabled' };

/**
 * An SSM parameter name: a full path ("/team/ci/secret"). The IAM policies grant
 * `arn:...:parameter${name}`, which only names the parameter when the name starts with "/".
 */
export function ssmName(env: Source, name: VariableName): string | undefined {
  const value = optional(env, name);
  if (value !== undefined && !/^\/[A-Za-z0-9_.\-/]{1,1010}$/.test(value)) fail(env, name);
  return value;
}

export function secret(env: Source, plain: VariableName, parameter: VariableName): SecretSource {
  const value = optional(env, plain);
  const name = ssmName(env, parameter);
  if (value !== undefined && name !== undefined) {
    throw new ConfigError(parameter, `Set only one of ${plain} and ${parameter}, not both`);
  }
  if (value !== undefined) return { kind: 'value', value };
  if (name !== undefined) return { kind: 'parameter', name };
  return { kind: 'disabled' };
}

export const GITHUB_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
export const GITHUB_REPO = /^[A-Za-z0-9._-]{1,100}$/;
const GITLAB_PATH = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$/;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** GitLab projects served (GITLAB_PROJECTS): positive ids and full paths, lower-cased. */
export function gitlabProjects(env: Source): string[] | undefined {
  return list(env, 'GITLAB_PROJECTS', (p) => /^[1-9]\d{0,15}$/.test(p) || GITLAB_PATH.test(p));
}
