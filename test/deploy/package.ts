/**
 * Runs `serverless package` (osls) offline, without credentials, on a copy of the service in a
 * temporary directory (so parallel runs and the work tree never share .serverless/ or .esbuild/),
 * and reads back what it produced. Also: a small evaluator of the template's Conditions and
 * Fn::If, so tests see the resources and IAM statements a given stage really deploys.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';

/** One resource of a CloudFormation template; `Properties` are read with the helpers below. */
export type Resource = {
  Type: string;
  Condition?: string;
  Properties: Record<string, unknown>;
  [field: string]: unknown;
};

export type Template = {
  Conditions?: Record<string, unknown>;
  Resources: Record<string, Resource>;
  Outputs?: Record<string, unknown>;
  [field: string]: unknown;
};

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The resource `id` of the template; throws when the template has none. */
export function resource(template: Template, id: string): Resource {
  const r = template.Resources[id];
  if (!r) throw new Error(`the template has no resource ${id}`);
  return r;
}

/**
 * The value at a dot path in a template value (`at(props, 'Environment.Variables')`, array
 * indexes as numbers: `'Dimensions.0.Value'`; `''` is the value itself), or undefined when the
 * path leads nowhere.
 */
export function at(value: unknown, path: string): unknown {
  let v = value;
  if (path === '') return v;
  for (const seg of path.split('.')) {
    if (Array.isArray(v) && /^\d+$/.test(seg)) v = v[Number(seg)];
    else v = isRecord(v) ? v[seg] : undefined;
  }
  return v;
}

/** `at(value, path)` that must be an object (throws naming the path otherwise). */
export function recordAt(value: unknown, path: string): Record<string, unknown> {
  const v = at(value, path);
  if (!isRecord(v)) throw new Error(`${path}: expected an object, got ${JSON.stringify(v)}`);
  return v;
}

/** `at(value, path)` that must be a list. */
export function listAt(value: unknown, path: string): unknown[] {
  const v = at(value, path);
  if (!Array.isArray(v)) throw new Error(`${path}: expected a list, got ${JSON.stringify(v)}`);
  return v;
}

/** `at(value, path)` that must be a number. */
export function numberAt(value: unknown, path: string): number {
  const v = at(value, path);
  if (typeof v !== 'number') throw new Error(`${path}: expected a number, got ${JSON.stringify(v)}`);
  return v;
}

export interface Packaged {
  readonly dir: string;
  /** Directory holding the zips and templates (`<dir>/.serverless`). */
  readonly out: string;
  readonly template: Template;
  readonly seconds: number;
  readonly log: string;
  cleanup(): void;
}

export interface PackageOptions {
  /** `--param` values, e.g. `maxAgents=ten`. */
  readonly params?: readonly string[];
  /** Other command-line arguments, e.g. `--region`. */
  readonly args?: readonly string[];
  /** Environment on top of the offline one (no profile, fake credentials, AWS_REGION us-east-1); '' unsets. */
  readonly env?: Readonly<Record<string, string>>;
}

const withoutEmpty = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));

/** Copies what `serverless package` reads into a temporary directory and runs it there. */
async function runPackage(stage: string, options: PackageOptions) {
  const dir = mkdtempSync(join(tmpdir(), 'sls-package-'));
  for (const entry of ['serverless.yml', 'package.json', 'tsconfig.json', 'functions', 'infra']) {
    cpSync(join(PROJECT_ROOT, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const started = performance.now();
  const args = [join(PROJECT_ROOT, 'node_modules/osls/bin/serverless.js'), 'package', '--stage', stage];
  for (const p of options.params ?? []) args.push(`--param=${p}`);
  args.push(...(options.args ?? []));
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, args, {
      cwd: dir,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
      // No profile, no real credentials, no network: packaging must not need any of them.
      env: withoutEmpty({
        PATH: process.env.PATH ?? '',
        HOME: dir,
        CI: '1',
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKEFAKE',
        AWS_SECRET_ACCESS_KEY: 'fake',
        ...options.env,
      }),
    });
    return { dir, ok: true, log: stdout + stderr, seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; code?: number };
    return { dir, ok: false, log: `${e.stdout ?? ''}${e.stderr ?? ''}`, seconds: (performance.now() - started) / 1000 };
  }
}

/** `serverless package` of `stage` that must fail: its output (the error message among it). */
export async function refusedPackage(stage: string, options: PackageOptions = {}): Promise<string> {
  const run = await runPackage(stage, options);
  rmSync(run.dir, { recursive: true, force: true });
  if (run.ok) throw new Error(`serverless package --stage ${stage} succeeded:\n${run.log}`);
  return run.log;
}

/** Packages `stage` (offline, no credentials) and reads back what it produced. */
export async function packageService(stage: string, options: PackageOptions = {}): Promise<Packaged> {
  const { dir, ok, log, seconds } = await runPackage(stage, options);
  if (!ok) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`serverless package --stage ${stage} failed:\n${log}`);
  }
  const out = join(dir, '.serverless');
  const template = JSON.parse(readFileSync(join(out, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  return {
    dir,
    out,
    template,
    seconds,
    log,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Evaluates a CloudFormation condition expression (Fn::Not/And/Or/Equals, Condition). */
export function evaluateCondition(template: Template, expr: unknown): boolean {
  if (typeof expr === 'string') return evaluateCondition(template, { Condition: expr });
  if (!isRecord(expr)) throw new Error(`unsupported condition ${JSON.stringify(expr)}`);
  if ('Condition' in expr) {
    const name = String(expr.Condition);
    const def = template.Conditions?.[name];
    if (def === undefined) throw new Error(`unknown condition ${name}`);
    return evaluateCondition(template, def);
  }
  if ('Fn::Not' in expr) return !evaluateCondition(template, listAt(expr, 'Fn::Not')[0]);
  if ('Fn::And' in expr) return listAt(expr, 'Fn::And').every((e) => evaluateCondition(template, e));
  if ('Fn::Or' in expr) return listAt(expr, 'Fn::Or').some((e) => evaluateCondition(template, e));
  if ('Fn::Equals' in expr) {
    const [a, b] = listAt(expr, 'Fn::Equals');
    if (typeof a !== 'string' || typeof b !== 'string')
      throw new Error(`cannot evaluate ${JSON.stringify(expr)} offline`);
    return a === b;
  }
  throw new Error(`unsupported condition ${JSON.stringify(expr)}`);
}

const NO_VALUE = Symbol('AWS::NoValue');

/** The template as this stage deploys it: conditional resources and Fn::If branches resolved. */
export function effectiveTemplate(template: Template): Template {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk).filter((v) => v !== NO_VALUE);
    if (isRecord(node)) {
      if (node.Ref === 'AWS::NoValue') return NO_VALUE;
      if ('Fn::If' in node) {
        const [cond, yes, no] = listAt(node, 'Fn::If');
        return walk(evaluateCondition(template, cond) ? yes : no);
      }
      return Object.fromEntries(
        Object.entries(node)
          .map(([k, v]) => [k, walk(v)] as const)
          .filter(([, v]) => v !== NO_VALUE),
      );
    }
    return node;
  };
  const resources = Object.fromEntries(
    Object.entries(template.Resources)
      .filter(([, r]) => !r.Condition || evaluateCondition(template, r.Condition))
      // A resource stays a resource: only the values inside it are resolved.
      .map(([id, r]) => [id, walk(r) as Resource]),
  );
  return { ...template, Resources: resources };
}

export interface IamStatement {
  readonly role: string;
  readonly Sid?: string;
  readonly Effect: string;
  readonly actions: string[];
  readonly resources: unknown[];
  readonly Condition?: unknown;
}

/** Every statement of every inline policy of every IAM role (and standalone policy). */
export function iamStatements(template: Template): IamStatement[] {
  const out: IamStatement[] = [];
  const asArray = (v: unknown) => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
  for (const [id, r] of Object.entries(template.Resources)) {
    const docs =
      r.Type === 'AWS::IAM::Role'
        ? asArray(r.Properties.Policies).map((p) => at(p, 'PolicyDocument'))
        : r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy'
          ? [r.Properties.PolicyDocument]
          : [];
    for (const doc of docs) {
      for (const s of asArray(at(doc, 'Statement'))) {
        if (!isRecord(s)) throw new Error(`${id}: a statement that is not an object: ${JSON.stringify(s)}`);
        const statement = s;
        const sid = statement.Sid;
        out.push({
          role: id,
          ...(typeof sid === 'string' ? { Sid: sid } : {}),
          Effect: String(statement.Effect),
          actions: asArray(statement.Action).map((a) => (typeof a === 'string' ? a : JSON.stringify(a))),
          resources: asArray(statement.Resource),
          Condition: statement.Condition,
        });
      }
    }
  }
  return out;
}
