/**
 * Compares the scaler's Kubernetes RBAC (infra/k8s/rbac.yaml) with the calls it really makes, as
 * recorded by the fake API server (tools/local/fake-kube: `server.calls`). Use it from any
 * integration test that drives the scaler against the fake server:
 *
 *   assertRbacCovers(fake.calls);                      // nothing used that the Role forbids
 *   assertRbacCovers(fake.calls, { exhaustive: true }); // ...and nothing granted goes unused
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';

/** One resource request, named as RBAC names it (the shape of fake-kube's KubeCall). */
export interface RbacCall {
  readonly verb: string;
  /** API group, '' for the core group. */
  readonly group: string;
  readonly resource: string;
  readonly subresource?: string;
  /** Absent for a cluster-wide request. */
  readonly namespace?: string | undefined;
  readonly name?: string | undefined;
}

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames?: readonly string[];
}

export interface ScalerRole {
  readonly namespace: string;
  readonly rules: readonly PolicyRule[];
}

/**
 * Grants that may go unused by the scaler, each with its reason. Empty: every grant of the Role
 * (infra/k8s/rbac.yaml) is a call the scaler makes. Add `'<group>/<resource>:<verb>'` here
 * (with the reason) before granting anything the scaler does not call.
 */
export const UNUSED_GRANTS_ALLOWED: Readonly<Record<string, string>> = {};

/** The Role of infra/k8s/rbac.yaml. */
export function scalerRole(file = join(PROJECT_ROOT, 'infra/k8s/rbac.yaml')): ScalerRole {
  const role = parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as { kind?: string; metadata: { namespace: string }; rules: PolicyRule[] })
    .find((d) => d?.kind === 'Role');
  if (!role) throw new Error(`${file} has no Role`);
  return { namespace: role.metadata.namespace, rules: role.rules };
}

const resourceOf = (c: RbacCall) => (c.subresource ? `${c.resource}/${c.subresource}` : c.resource);
const has = (list: readonly string[], value: string) => list.includes('*') || list.includes(value);

/** Whether the Role allows the call (namespaced Role: never a cluster-wide request). */
export function allows(role: ScalerRole, call: RbacCall): boolean {
  if (call.namespace !== role.namespace) return false;
  return role.rules.some(
    (r) =>
      has(r.apiGroups, call.group) &&
      has(r.resources, resourceOf(call)) &&
      has(r.verbs, call.verb) &&
      (!r.resourceNames ||
        r.resourceNames.length === 0 ||
        (call.name !== undefined && r.resourceNames.includes(call.name))),
  );
}

const key = (group: string, resource: string, verb: string) => `${group || 'core'}/${resource}:${verb}`;

/** Every (group, resource, verb) the Role grants, as `'<group|core>/<resource>:<verb>'`. */
export function grants(role: ScalerRole): string[] {
  return [
    ...new Set(
      role.rules.flatMap((r) =>
        r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => key(g, res, v)))),
      ),
    ),
  ].sort();
}

/**
 * The Role without some grants (`'<group|core>/<resource>:<verb>'`): for an exhaustive check of
 * a run that cannot exercise every path (a delete only a failure makes).
 */
export function roleWithout(role: ScalerRole, without: readonly string[]): ScalerRole {
  const drop = new Set(without);
  return {
    ...role,
    rules: role.rules.flatMap((r) =>
      r.apiGroups.flatMap((g) =>
        r.resources.flatMap((res) => {
          const verbs = r.verbs.filter((v) => !drop.has(key(g, res, v)));
          return verbs.length > 0 ? [{ ...r, apiGroups: [g], resources: [res], verbs }] : [];
        }),
      ),
    ),
  };
}

export interface RbacReport {
  /** Calls the Role forbids (the scaler would get 403 Forbidden). */
  readonly forbidden: RbacCall[];
  /** Grants no call used, minus UNUSED_GRANTS_ALLOWED. */
  readonly unused: string[];
}

export function compareRbac(calls: readonly RbacCall[], role: ScalerRole = scalerRole()): RbacReport {
  const forbidden = calls.filter((c) => !allows(role, c));
  const used = new Set(calls.map((c) => key(c.group, resourceOf(c), c.verb)));
  const unused = grants(role).filter((g) => !used.has(g) && !(g in UNUSED_GRANTS_ALLOWED));
  return { forbidden, unused };
}

/**
 * Throws when a recorded call is not allowed by the scaler's Role; with `exhaustive`, also when
 * the Role grants something none of the calls used (give it the calls of a run that exercises
 * every operation: list, create).
 */
export function assertRbacCovers(
  calls: readonly RbacCall[],
  options: { exhaustive?: boolean; role?: ScalerRole } = {},
): void {
  if (calls.length === 0)
    throw new Error('assertRbacCovers: no calls recorded (is the scaler talking to the fake API server?)');
  const report = compareRbac(calls, options.role);
  const problems: string[] = [];
  if (report.forbidden.length > 0) {
    const distinct = [
      ...new Set(
        report.forbidden.map(
          (c) => `${c.verb} ${c.group || 'core'}/${resourceOf(c)} in ${c.namespace ?? '(cluster-wide)'}`,
        ),
      ),
    ];
    problems.push(`the scaler's Role (infra/k8s/rbac.yaml) forbids calls the scaler made: ${distinct.join('; ')}`);
  }
  if (options.exhaustive && report.unused.length > 0) {
    problems.push(
      `the scaler's Role grants what the scaler never used: ${report.unused.join(', ')} (remove it, or add it to UNUSED_GRANTS_ALLOWED with the reason)`,
    );
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}
