/**
 * JSON as the fake API server receives it (`unknown`, narrowed by the helpers below), and the
 * shapes of the Jobs and Pods it stores: only the fields the fake reads or writes are typed, the
 * rest of a client's object is kept as it came (`[field: string]: unknown`).
 */

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `v` if it is a JSON object, else an empty one (for reading optional sub-objects). */
export function asObject(v: unknown): JsonObject {
  return isObject(v) ? v : {};
}

/** The value at `path` (`'metadata.name'`), or undefined when some step is not an object. */
export function getPath(v: unknown, path: string): unknown {
  let at: unknown = v;
  for (const seg of path.split('.')) at = isObject(at) ? at[seg] : undefined;
  return at;
}

export function optionalString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export type Labels = Record<string, string>;

export function isLabels(v: unknown): v is Labels {
  return isObject(v) && Object.values(v).every((x) => typeof x === 'string');
}

export type Condition = {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastProbeTime?: string;
  lastTransitionTime?: string;
};

export type OwnerReference = {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
};

/** metadata of a stored object (name, namespace, uid, resourceVersion: set by the server). */
export type ObjectMeta = {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generation?: number;
  generateName?: string;
  labels?: Labels;
  annotations?: Labels;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [field: string]: unknown;
};

export type Container = { name: string; image: string; env?: unknown[]; [field: string]: unknown };

export type PodSpec = { containers: Container[]; hostname?: string; [field: string]: unknown };

export type PodTemplate = {
  metadata?: { labels?: Labels; annotations?: Labels; [field: string]: unknown };
  spec: PodSpec;
};

export type PodFailurePolicyRule = {
  action: string;
  onExitCodes?: { operator: string; values: number[] };
  onPodConditions?: { type: string; status?: string }[];
};

export type JobSpec = {
  template: PodTemplate;
  parallelism: number;
  completions?: number;
  completionMode: string;
  backoffLimit: number;
  backoffLimitPerIndex?: number | null;
  maxFailedIndexes?: number | null;
  suspend: boolean;
  podReplacementPolicy: string;
  podFailurePolicy?: { rules: PodFailurePolicyRule[] };
  selector: { matchLabels: Labels };
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  [field: string]: unknown;
};

export type JobStatus = {
  conditions?: Condition[];
  startTime?: string;
  completionTime?: string;
  active?: number;
  succeeded?: number;
  failed?: number;
  ready?: number;
  terminating?: number;
  completedIndexes?: string;
  failedIndexes?: string;
  uncountedTerminatedPods?: JsonObject;
  [field: string]: unknown;
};

export type JobObject = {
  apiVersion: 'batch/v1';
  kind: 'Job';
  metadata: ObjectMeta & { generation: number };
  spec: JobSpec;
  status: JobStatus;
  [field: string]: unknown;
};

export type PodStatus = {
  phase: string;
  conditions: Condition[];
  qosClass?: string;
  startTime?: string;
  containerStatuses?: unknown[];
  [field: string]: unknown;
};

export type PodObject = {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMeta;
  spec: PodSpec;
  status: PodStatus;
};

/**
 * A Job body as `validateJob` accepted it (before defaulting): metadata.name, the pod template
 * with named containers and the podFailurePolicy rules are checked; the rest is optional.
 */
export type ValidJobInput = {
  apiVersion?: unknown;
  kind?: unknown;
  metadata: Partial<ObjectMeta> & { name: string };
  spec: Partial<JobSpec> & { template: PodTemplate };
  [field: string]: unknown;
};
