/**
 * The registry: every environment variable the product reads, declared once (variables/*.ts) with
 * its default, bounds or choices, the functions that read it and a description. Error messages
 * and the README's configuration table (`npm run docs:config`) are derived from it.
 */
import { expectedOf, type VariableSpec } from './declaration.js';
import { CACHE_VARIABLES } from './variables/cache.js';
import { COMMON_VARIABLES } from './variables/common.js';
import { SCALER_VARIABLES } from './variables/scaler.js';
import { WEBHOOK_VARIABLES } from './variables/webhook.js';

const DECLARATIONS = [...COMMON_VARIABLES, ...WEBHOOK_VARIABLES, ...SCALER_VARIABLES, ...CACHE_VARIABLES] as const;

export type VariableName = (typeof DECLARATIONS)[number]['name'];

export const VARIABLES: readonly (VariableSpec & { readonly name: VariableName })[] = DECLARATIONS.map((d) => ({
  ...d,
  expected: expectedOf(d),
}));

const SPECS = new Map<string, VariableSpec>(VARIABLES.map((v) => [v.name, v]));

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
