/**
 * Agent Job templates: a provider's built-in one (its descriptor's `template`, a file in
 * infra/k8s/agents/) or a path to a YAML file holding a batch/v1 Job with a pod template. Parsed
 * once and cached; the returned object is shared and must not be mutated (buildAgentJob copies it).
 *
 * Where infra/k8s/agents is found: $LAMBDA_TASK_ROOT (the unpacked Lambda package — package the
 * YAML files with the function), then the directories above this module, then the working
 * directory.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Job } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { allProviders } from '../../core/providers/registry.js';

/** The built-in templates: each provider descriptor's (core/providers/registry.ts). */
export const BUILTIN_TEMPLATES: readonly string[] = allProviders().map((p) => p.template);
const AGENTS_DIR = join('infra', 'k8s', 'agents');

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

/** Candidate package roots, most specific first. */
function roots(): string[] {
  const out: string[] = [];
  if (process.env.LAMBDA_TASK_ROOT) out.push(process.env.LAMBDA_TASK_ROOT);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    out.push(dir);
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  out.push(process.cwd());
  return out;
}

/** The directory holding the built-in templates. */
export function agentsDir(): string {
  for (const root of roots()) {
    const candidate = join(root, AGENTS_DIR);
    if (existsSync(candidate)) return candidate;
  }
  throw new TemplateError(
    `cannot find ${AGENTS_DIR} (looked under $LAMBDA_TASK_ROOT, above ${fileURLToPath(import.meta.url)}, and ${process.cwd()})`,
  );
}

/** The file a template name or path refers to. */
export function templatePath(nameOrPath: string): string {
  if (BUILTIN_TEMPLATES.includes(nameOrPath)) return join(agentsDir(), `${nameOrPath}.yaml`);
  if (isAbsolute(nameOrPath)) return nameOrPath;
  for (const root of [process.cwd(), ...roots()]) {
    const candidate = resolve(root, nameOrPath);
    if (existsSync(candidate)) return candidate;
  }
  return resolve(nameOrPath);
}

/** Checks the shape the scaler relies on; returns the Job. */
export function validateTemplate(doc: unknown, source: string): V1Job {
  const job = doc as V1Job | null;
  // Typed as a never-returning function so that each check narrows `job` for the next one.
  const fail: (what: string) => never = (what) => {
    throw new TemplateError(`Job template ${source}: ${what}`);
  };
  if (!job || typeof job !== 'object') fail('is not a YAML object');
  if (job.apiVersion !== 'batch/v1' || job.kind !== 'Job')
    fail(`must be apiVersion batch/v1, kind Job (got ${job.apiVersion}/${job.kind})`);
  const containers = job.spec?.template?.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) fail('needs spec.template.spec.containers');
  containers.forEach((c, i) => {
    if (!c?.name || !c.image) fail(`container ${i} needs a name and an image`);
  });
  return job;
}

const cache = new Map<string, Promise<V1Job>>();

/** Loads, validates and caches a template by name (buildkite|github|gitlab) or path. */
export function loadTemplate(nameOrPath: string): Promise<V1Job> {
  const path = templatePath(nameOrPath);
  let loaded = cache.get(path);
  if (!loaded) {
    loaded = (async () => {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (e) {
        throw new TemplateError(`Job template ${nameOrPath}: cannot read ${path}: ${(e as Error).message}`);
      }
      let doc: unknown;
      try {
        doc = parse(text);
      } catch (e) {
        throw new TemplateError(`Job template ${path}: invalid YAML: ${(e as Error).message}`);
      }
      return validateTemplate(doc, path);
    })();
    loaded.catch(() => cache.delete(path));
    cache.set(path, loaded);
  }
  return loaded;
}

/** Forget cached templates (tests). */
export function clearTemplateCache(): void {
  cache.clear();
}
