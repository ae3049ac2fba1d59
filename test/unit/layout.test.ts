/**
 * `functions/` holds deployed code only: every file in it is reached from one of the three Lambda
 * handlers through its imports (type-only imports included). The local stack, the simulator and
 * the fakes live under `tools/`, beside `test/`, and are never deployed.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const HANDLERS = ['functions/webhook/handler.ts', 'functions/scaler/handler.ts', 'functions/cache/handler.ts'];

/** The relative imports of one file, resolved to files of the repository. */
function imports(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles
    .map((i) => i.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => {
      const base = resolve(dirname(file), spec);
      const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')];
      const found = candidates.find((c) => existsSync(c) && statSync(c).isFile());
      if (!found) throw new Error(`${relative(ROOT, file)}: cannot resolve ${spec}`);
      return found;
    });
}

function closure(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = entries.map((e) => join(ROOT, e));
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (file.endsWith('.ts')) todo.push(...imports(file));
  }
  return seen;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? tsFiles(path) : e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('layout: functions/ is what the handlers deploy', () => {
  const deployed = closure(HANDLERS);

  it('follows the imports it checks (it cannot pass on an empty closure)', () => {
    const names = [...deployed].map((f) => relative(ROOT, f));
    expect(names).toEqual(expect.arrayContaining(['functions/scaler/drain.ts', 'functions/core/stores.ts']));
    expect(names.length).toBeGreaterThan(40);
  });

  it('every TypeScript file under functions/ is imported by a handler', () => {
    const stray = tsFiles(join(ROOT, 'functions'))
      .filter((f) => !deployed.has(f))
      .map((f) => relative(ROOT, f));
    expect(stray, 'tooling belongs under tools/ (local stack, simulator, fakes)').toEqual([]);
  });

  it('no handler reaches into tools/ or test/', () => {
    const outside = [...deployed].map((f) => relative(ROOT, f)).filter((f) => !f.startsWith('functions/'));
    expect(outside.filter((f) => f.startsWith('tools/') || f.startsWith('test/'))).toEqual([]);
  });
});
