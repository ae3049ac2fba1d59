/**
 * The registry: every environment variable the product reads, declared once (variables/*.ts) with
 * its default, bounds or choices, the functions that read it and a description. Error messages
 * and the README's configuration table (`npm run docs:config`) are derived from it.
 */
import { type Declaration, expectedOf, type VariableSpec } from './declaration.js';
import { CACHE_VARIABLES } from './variables/cache.js';
import { COMMON_VARIABLES } from './variables/common.js';
import { SCALER_VARIABLES } from './variables/scaler.js';
import { WEBHOOK_VARIABLES } from './variables/webhook.js';

/** Every list in one, in table order. Pure: a bundle that reads no registry export drops the text. */
function all<const T extends readonly (readonly Declaration[])[]>(...lists: T): T[number][number][] {
  return lists.flat() as T[number][number][];
}

const DECLARATIONS = /* @__PURE__ */ all(COMMON_VARIABLES, WEBHOOK_VARIABLES, SCALER_VARIABLES, CACHE_VARIABLES);

export type VariableName = (typeof DECLARATIONS)[number]['name'];

function withExpected(declarations: readonly Declaration[]): (VariableSpec & { readonly name: VariableName })[] {
  return declarations.map((d) => ({ ...d, name: d.name as VariableName, expected: expectedOf(d) }));
}

export const VARIABLES: readonly (VariableSpec & { readonly name: VariableName })[] =
  /* @__PURE__ */ withExpected(DECLARATIONS);

function byName(specs: readonly VariableSpec[]): Map<string, VariableSpec> {
  return new Map(specs.map((v) => [v.name, v]));
}

const SPECS = /* @__PURE__ */ byName(VARIABLES);

export function spec(name: VariableName): VariableSpec {
  const found = SPECS.get(name);
  if (!found) throw new Error(`unknown configuration variable ${name}`);
  return found;
}

/** The embedded default of a variable (undefined for required or optional-without-default). */
export function defaultOf(name: VariableName): string | undefined {
  return spec(name).default;
}

/** Markdown table of every variable, for the README (kept in sync by a test). */
export function configurationTable(): string {
  const rows = VARIABLES.map((v) => {
    const def = v.required ? '**required**' : v.default !== undefined ? `\`${v.default}\`` : '(unset)';
    return `| \`${v.name}\` | ${v.functions.join(', ')} | ${def} | ${v.expected} | ${v.description} |`;
  });
  return ['| variable | read by | default | expected | what it does |', '|---|---|---|---|---|', ...rows].join('\n');
}
