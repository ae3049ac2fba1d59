/**
 * Dependencies run one way: tests use the product and its tooling, the tooling (functions/local,
 * functions/simulate) uses the deployed code, and the deployed code (what serverless.yml packages)
 * uses neither. Checked on the import statements of every file under functions/.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';

const FUNCTIONS = join(PROJECT_ROOT, 'functions');
/** Folders of functions/ that are deployed (the Lambda handlers and everything they use). */
const DEPLOYED = ['webhook', 'scaler', 'cache', 'core', 'adapters', 'shared'];
/** Folders of functions/ that are tooling: never packaged, free to use the deployed code. */
const TOOLING = ['local', 'simulate'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative specifiers of static imports, re-exports and dynamic imports. */
function relativeImports(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s*)['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    if (match[1]) found.push(match[1]);
  }
  return found;
}

/** Top folder of a path inside the project (`functions/local`, `test`, `infra`, ...). */
function area(path: string): string {
  const [top = '', second = ''] = relative(PROJECT_ROOT, path).split(sep);
  return top === 'functions' ? `functions/${second}` : top;
}

const edges = sources(FUNCTIONS).flatMap((file) =>
  relativeImports(readFileSync(file, 'utf8')).map((specifier) => ({
    from: relative(PROJECT_ROOT, file),
    fromArea: area(file),
    to: relative(PROJECT_ROOT, resolve(dirname(file), specifier)),
    toArea: area(resolve(dirname(file), specifier)),
  })),
);

describe('layout: dependencies run one way', () => {
  it('reads the imports it checks (the check cannot pass on an empty list)', () => {
    expect(
      relativeImports("import { a } from '../x.js';\nexport * from './y.js';\nawait import('../../z.js');"),
    ).toEqual(['../x.js', './y.js', '../../z.js']);
    expect(edges.some((e) => e.fromArea === 'functions/local' && e.toArea === 'functions/scaler')).toBe(true);
  });

  it('nothing under functions/ imports from test/', () => {
    expect(edges.filter((e) => e.toArea === 'test')).toEqual([]);
  });

  it('deployed code (webhook, scaler, core, adapters, shared) imports no tooling (local, simulate)', () => {
    const deployed = new Set(DEPLOYED.map((d) => `functions/${d}`));
    const tooling = new Set(TOOLING.map((d) => `functions/${d}`));
    expect(edges.filter((e) => deployed.has(e.fromArea) && tooling.has(e.toArea))).toEqual([]);
  });

  it('every folder of functions/ is named as deployed or tooling', () => {
    const folders = readdirSync(FUNCTIONS, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
    expect(folders).toEqual([...DEPLOYED, ...TOOLING].sort());
  });
});
