/**
 * `--cluster kwok` (npm start, npm run demo): the real control plane of the tests
 * (tools/k8s/control-plane.ts, built by `npm run k8s:build`: etcd, kube-apiserver, the
 * controllers, kwok nodes) with infra/k8s applied to KUBE_NAMESPACE. Its pods run no agent: kwok
 * moves each by its fate annotation (tools/k8s/kwok-stages.yaml), and the local stack's simulated
 * CI provider gives the Running ones their CI jobs (stack.ts `simulatedCiKubeconfig`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';
import { FATE } from '../k8s/control-plane.js';
import { SIMULATED_AGENT_TEMPLATE } from './stack.js';

/** The simulated agent's Job template whose pods kwok runs for `runMs`, then succeeds; its path. */
export function writeKwokAgentTemplate(dir: string, runMs: number): string {
  const template = parse(readFileSync(SIMULATED_AGENT_TEMPLATE, 'utf8'));
  template.spec.template.metadata = {
    annotations: { [FATE]: 'succeed', 'ci-autoscaler.test/after': `${runMs}ms` },
  };
  const file = path.join(dir, 'kwok-agent.yaml');
  writeFileSync(file, stringify(template));
  return file;
}

/**
 * Starts the plane and applies infra/k8s to KUBE_NAMESPACE; unless JOB_TEMPLATE is set, points
 * it at the simulated agent's template whose pods succeed after `runMs`. `kubeconfig` is the
 * scaler's (its own identity, group ci-agent-autoscaler), `adminKubeconfig` the simulated CI's.
 */
export async function startKwokCluster(runMs: number) {
  const { startControlPlane, kustomize } = await import('../k8s/control-plane.js');
  const plane = await startControlPlane();
  try {
    const namespace = process.env.KUBE_NAMESPACE?.trim() || 'ci-agents';
    await plane.apply(kustomize(path.join(PROJECT_ROOT, 'infra', 'k8s'), namespace));
    if (!process.env.JOB_TEMPLATE?.trim()) process.env.JOB_TEMPLATE = writeKwokAgentTemplate(plane.dir, runMs);
    return { ...plane, stop: () => plane.stop(), kubeconfig: plane.scalerKubeconfig(namespace) };
  } catch (error) {
    await plane.stop();
    throw error;
  }
}
