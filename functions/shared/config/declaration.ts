/** The shape of one variable's declaration, and the words derived from its bounds or choices. */
export type FunctionName = 'webhook' | 'scaler' | 'cache';

/** An integer bound: a number, or the name of another integer variable (its value at cold start). */
export type Bound = number | string;

export interface IntBounds {
  readonly min: Bound;
  readonly max?: Bound;
  /** A second lower bound, when `min` names a variable (MAX_AGENTS: >= MIN_AGENTS and >= 1). */
  readonly floor?: number;
  /** A value accepted outside the bounds, meaning "off". */
  readonly off?: number;
  /** Said after the bounds, in parentheses. */
  readonly note?: string;
}

export interface Declaration {
  readonly name: string;
  readonly functions: readonly FunctionName[];
  /** Shown in the README; `undefined` means required (or optional without default). */
  readonly default?: string;
  readonly required?: boolean;
  /** An integer variable: its bounds give its expected text and its check. */
  readonly int?: IntBounds;
  /** A variable taking one of these values (case-insensitive): its expected text and its check. */
  readonly enum?: readonly string[];
  /** What a valid value looks like, in words, where neither `int` nor `enum` says it (or says all of it). */
  readonly expected?: string;
  readonly description: string;
  readonly secret?: boolean;
}

/** A declaration with its expected text resolved: what error messages and the README show. */
export interface VariableSpec extends Declaration {
  readonly expected: string;
}

function intWords(b: IntBounds): string {
  const { min, max, floor, off, note } = b;
  let words: string;
  if (max === undefined) words = `>= ${min}${floor === undefined ? '' : ` and >= ${floor}`}`;
  else if (typeof min === 'number') words = `from ${min} to ${max}`;
  else words = `>= ${min} and <= ${max}`;
  const text = off === undefined ? `an integer ${words}` : `an integer: ${off} (off) or ${words}`;
  return note === undefined ? text : `${text} (${note})`;
}

function enumWords(values: readonly string[]): string {
  return values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
}

/** The expected text of a declaration: its own words, else derived from its bounds or choices. */
export function expectedOf(d: Declaration): string {
  if (d.expected !== undefined) return d.expected;
  if (d.int) return intWords(d.int);
  if (d.enum) return enumWords(d.enum);
  throw new Error(`${d.name} declares neither expected, int nor enum`);
}
