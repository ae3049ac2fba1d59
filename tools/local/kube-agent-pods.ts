/**
 * The simulated CI provider's view of a REAL cluster's agent pods (`npm start -- --cluster kwok`):
 * the Running pods with our label in the namespace, listed through the Kubernetes API with a
 * kubeconfig of its own (the control plane's admin; the scaler's identity is not the CI
 * provider's). Polled in the background, so that SimulatedCi reads the last list synchronously
 * as it reads the embedded fake's pods. A list that fails keeps the previous one: an unreachable
 * API server must not look like every agent finished.
 */
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { AGENT_JOB_SELECTOR } from '../../functions/core/agent-job.js';

export interface KubeAgentPods {
  /** Agent pods in phase Running at the last successful list. */
  running(): V1Pod[];
  /** Resolves after the first successful list (or rejects with its error). */
  ready(): Promise<void>;
  stop(): void;
}

export function watchAgentPods(options: {
  readonly kubeconfig: string;
  readonly namespace: string;
  readonly intervalMs?: number;
  readonly onError?: (message: string) => void;
}): KubeAgentPods {
  const kc = new KubeConfig();
  kc.loadFromFile(options.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  let pods: V1Pod[] = [];
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let lastError = '';
  const list = async (): Promise<void> => {
    const result = await core.listNamespacedPod({
      namespace: options.namespace,
      labelSelector: AGENT_JOB_SELECTOR,
      fieldSelector: 'status.phase=Running',
    });
    // A pod being deleted is on its way out: its agent has stopped taking work.
    pods = result.items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
  };
  const loop = async (): Promise<void> => {
    try {
      await list();
      lastError = '';
    } catch (error) {
      const message = `simulated CI: listing agent pods in ${options.namespace}: ${error instanceof Error ? error.message : String(error)}`;
      if (message !== lastError) options.onError?.(message);
      lastError = message;
    }
    if (!stopped) {
      timer = setTimeout(() => void loop(), options.intervalMs ?? 200);
      timer.unref();
    }
  };
  const first = list();
  first.then(
    () => void loop(),
    () => void loop(),
  );
  return {
    running: () => pods,
    ready: () => first,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
