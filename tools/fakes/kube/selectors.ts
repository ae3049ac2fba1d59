/** Label and field selectors with the Kubernetes grammar (the subset real clients send). */

export class SelectorError extends Error {}

type Requirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] };

const KEY = '(?:[A-Za-z0-9](?:[-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?';
const VALUE = '(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?';
const RE_NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);
const RE_EXISTS = new RegExp(`^(${KEY})$`);
const RE_EQ = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const RE_SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const RE_VALUE = new RegExp(`^${VALUE}$`);

/** A label value is at most 63 characters (apimachinery validateLabelValue). */
function checkValue(v: string): string {
  if (v.length > 63)
    throw new SelectorError(
      `invalid label value: "${v}": at key: must be no more than 63 characters (a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character)`,
    );
  return v;
}

/** Splits on commas that are not inside parentheses. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

export function parseLabelSelector(selector: string | null | undefined): Requirement[] {
  if (!selector || selector.trim() === '') return [];
  return splitTop(selector).map((raw) => {
    const part = raw.trim();
    const notExists = RE_NOT_EXISTS.exec(part);
    // Every group of these patterns is mandatory: a match has them all.
    if (notExists) return { key: notExists[1] ?? '', op: '!exists' };
    const set = RE_SET.exec(part);
    if (set) {
      const [, key = '', op, list = ''] = set;
      // `()` is the set of the empty value, as apimachinery's parser reads it.
      const values = list.split(',').map((v) => v.trim());
      if (values.some((v) => !RE_VALUE.test(v))) throw new SelectorError(`unable to parse requirement: ${part}`);
      for (const v of values) checkValue(v);
      return { key, op: op as 'in' | 'notin', values };
    }
    const eq = RE_EQ.exec(part);
    if (eq) return { key: eq[1] ?? '', op: eq[2] === '!=' ? '!=' : '=', value: checkValue(eq[3] ?? '') };
    const exists = RE_EXISTS.exec(part);
    if (exists) return { key: exists[1] ?? '', op: 'exists' };
    throw new SelectorError(
      `unable to parse requirement: found '${part}', expected: key, !key, key=value, key in (values)`,
    );
  });
}

export function matchesLabels(reqs: Requirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case '=':
        return has && l[r.key] === r.value;
      case '!=':
        return !has || l[r.key] !== r.value;
      case 'in':
        return has && r.values.includes(l[r.key] ?? '');
      case 'notin':
        return !has || !r.values.includes(l[r.key] ?? '');
      default:
        return false;
    }
  });
}

export interface FieldRequirement {
  path: string;
  negate: boolean;
  value: string;
}

export function parseFieldSelector(
  selector: string | null | undefined,
  supported: readonly string[],
): FieldRequirement[] {
  if (!selector || selector.trim() === '') return [];
  return selector.split(',').map((raw) => {
    const m = /^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!m) throw new SelectorError(`invalid selector: '${raw}'; can't understand '${raw}'`);
    const [, path = '', op, value = ''] = m;
    if (!supported.includes(path)) throw new SelectorError(`field label not supported: ${path}`);
    return { path, negate: op === '!=', value };
  });
}

export function matchesFields(reqs: FieldRequirement[], obj: Record<string, unknown>): boolean {
  return reqs.every((r) => {
    let v: unknown = obj;
    for (const seg of r.path.split('.')) v = (v as Record<string, unknown> | undefined)?.[seg];
    const s = v === undefined || v === null ? '' : String(v);
    return r.negate ? s !== r.value : s === r.value;
  });
}
