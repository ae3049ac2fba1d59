/**
 * The scaler's ports: every outside system the pipeline reaches, as interfaces the scaler owns and
 * the adapters implement (SQS: EventSource, Kubernetes: ClusterPort and JobFactory, GitHub:
 * DispatchHooks, DynamoDB: the stores of core/stores.ts), so the same pipeline runs against AWS,
 * the emulators, the local stack and the simulator. Types only: nothing here does I/O.
 */
import type { V1Job, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { QueueBackoff } from '../core/backoff.js';
import type { Decision, ExitedAgents } from '../core/decision.js';
import type { JobEvent, Provider, QueuedJobEvent } from '../core/job-event.js';
import type { ClusterJob } from '../core/limiter.js';
import type { DispatchRecord, LedgerStore, LimiterStore } from '../core/stores.js';
import type { WarmPoolTracker } from '../core/warm-pool.js';
import type { ProviderReconciler } from './provider-reconcile.js';
import type { WarmLearning } from './warm-learning.js';

/** One message of the events queue as the drain receives it. */
export interface ReceivedEvent {
  readonly receiptHandle: string;
  readonly messageId: string;
  /** ApproximateReceiveCount: 1 on the first delivery. */
  readonly receiveCount: number;
  /** When the message was sent to the queue (SentTimestamp, epoch ms), when known: measures the lag. */
  readonly sentAt?: number;
  /** The parsed event (a GitLab one may still need its queue); absent when invalid (see `error`). */
  readonly event?: QueuedJobEvent;
  /** Why the body could not be parsed. Such a message is NOT deleted: it reaches the DLQ. */
  readonly error?: string;
}

/** The events queue (SQS adapter: adapters/sqs/events-queue.ts `eventSource`). */
export interface EventSource {
  receive(options: { max: number; waitSeconds: number }): Promise<ReceivedEvent[]>;
  /** Deletes the messages; returns the receipt handles that could not be deleted. */
  delete(receiptHandles: readonly string[]): Promise<string[]>;
  /** Delivers the message again only after `seconds` (best effort). */
  defer?(receiptHandle: string, seconds: number): Promise<void>;
}

/** What the scaler asks of the cluster (Kubernetes adapter: adapters/kubernetes/cluster.ts). */
export interface ClusterPort {
  /** Every Job this product created in the namespace (all pages of our label selector). */
  listAgentJobs(): Promise<V1Job[]>;
  /** 'exists' when a Job of that name is already there (409 AlreadyExists): a retried dispatch. */
  createJob(job: V1Job): Promise<'created' | 'exists'>;
  /**
   * The pods of the agent Jobs a query names (one paginated list per 100 Jobs; no call for no
   * Job), or without a query every pod of our agent Jobs in the namespace. Optional: back-off
   * and housekeeping need it.
   */
  listAgentPods?(query?: PodQuery): Promise<V1Pod[]>;
  /**
   * Creates a Secret owned by the Job `jobName` (an ownerReference with the Job's uid, so the
   * garbage collector deletes it with the Job); 'exists' when it is already there. Optional:
   * just-in-time GitHub runners need it (only for a Job whose Secret is missing).
   */
  createJobSecret?(jobName: string, secret: V1Secret): Promise<'created' | 'exists'>;
  /** Creates a Secret with no owner yet (before its Job); 'exists' when it is already there. */
  createSecret?(secret: V1Secret): Promise<'created' | 'exists'>;
  /** Makes the Job `jobName` the owner of the Secret (the garbage collector deletes it with the Job). */
  ownSecret?(secretName: string, jobName: string): Promise<void>;
  /** Deletes a Secret; one already gone is no error. */
  deleteSecret?(secretName: string): Promise<void>;
  /** Deletes an agent Job and (in the background) its pods; one already gone is no error. */
  deleteJob?(jobName: string): Promise<void>;
  /**
   * Stops one agent: deletes its pod with `DeleteOptions.gracePeriodSeconds` (the kubelet sends
   * SIGTERM and waits that long before SIGKILL) and `preconditions.uid` (never a pod of the same
   * name made meanwhile). 'gone' when there is nothing to stop: the pod no longer exists (404) or
   * it is another pod by now (409, the uid precondition failed). Optional: the warm pool's
   * scale-down needs it (scale-down.ts).
   */
  deletePod?(pod: PodRef, gracePeriodSeconds: number): Promise<'deleted' | 'gone'>;
  /**
   * Why the pods of these Jobs cannot be created: the newest `FailedCreate` Event the Job
   * controller recorded on each (a ResourceQuota, LimitRange, PodSecurity or ServiceAccount
   * refusal), none for a Job without one. One paginated Event list; no call for no Job.
   */
  listCreateFailures?(jobNames: readonly string[]): Promise<CreateFailure[]>;
}

/** One pod, by name and uid (ClusterPort.deletePod). */
export interface PodRef {
  readonly name: string;
  readonly uid: string;
}

/** A Job whose pods the API server refuses to create (ClusterPort.listCreateFailures). */
export interface CreateFailure {
  readonly jobName: string;
  /** The Job's uid the Event names. */
  readonly uid?: string;
  /** The Event's message: `Error creating: pods "..." is forbidden: <why>`. */
  readonly message: string;
  /** When it last happened (epoch ms). */
  readonly at: number;
}

/** Which agent pods to list (ClusterPort.listAgentPods). */
export interface PodQuery {
  readonly jobNames: readonly string[];
  /** Only the pods in this phase (field selector `status.phase`). */
  readonly phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  /** Only the pods of completion indexes 0..n-1 (label `batch.kubernetes.io/job-completion-index`). */
  readonly firstIndexes?: number;
}

/** Our Kubernetes Jobs, written and read back (adapters/kubernetes/job-factory.ts). */
export interface JobFactory {
  /** Deterministic Job name of a dispatch. */
  jobName(queue: string, dispatchId: string): string;
  /** The Kubernetes Job for a dispatch, from the queue's template. */
  build(dispatch: DispatchRecord): V1Job;
  /** Reads one of our Jobs back; undefined for a Job that is not ours. */
  describe(job: V1Job): ClusterJob | undefined;
}

/** One thing per provider that has one (scaler/providers.ts builds them from configuration). */
export type PerProvider<T> = Readonly<Partial<Record<Provider, T>>>;

/** Where an event without a queue goes (GitLab: scaler/gitlab-routes.ts). */
export type RouteOutcome =
  | { readonly event: JobEvent }
  | { readonly ignored: string }
  | { readonly failed: string; readonly retryAfterMs?: number };

export interface EventRouter {
  /** One outcome per input event, in input order. */
  resolve(events: readonly QueuedJobEvent[]): Promise<RouteOutcome[]>;
}

/** What one tick saw, for a provider's housekeeping. */
export interface TickView {
  /** Our Jobs as listed this tick. */
  readonly jobs: readonly ClusterJob[];
  /** The limiter's dispatches as read this tick (status intent and submitted). */
  readonly dispatches: readonly DispatchRecord[];
  /**
   * The pods of (at least) the Jobs `podsToSweep` named this tick, when it named some and the
   * list succeeded. Absent: nothing known of the pods.
   */
  readonly pods?: readonly V1Pod[];
  readonly now: number;
}

/**
 * What a provider may add to the submit stage, without the scaler knowing the provider:
 * credentials minted for a dispatch before its Job is created and handed to it after (GitHub's
 * just-in-time runner configurations: adapters/github/jit-runners.ts), and housekeeping once per
 * tick (removing registrations whose agents are gone).
 *
 * The contract that keeps a crash between any two steps repairable:
 *  - beforeCreate runs before the Job exists; when it throws (the provider is rate limiting or
 *    down) no Job is created and the dispatch stays in status intent, retried next tick or
 *    released when its lease ends: no limiter token leaks;
 *  - afterCreate runs once the Job exists and BEFORE the dispatch is marked submitted, so when it
 *    throws, or the scaler dies before it, the next tick finds the Job with its dispatch still in
 *    status intent and calls afterCreate again (it must be idempotent).
 */
export interface DispatchHooks {
  /** The Job to create for the dispatch (possibly changed). Throws to keep the dispatch for later. */
  beforeCreate(dispatch: DispatchRecord, job: V1Job): Promise<V1Job>;
  /** Finishes what the existing Job needs. Idempotent; throws to be called again next tick. */
  afterCreate(dispatch: DispatchRecord): Promise<void>;
  /** The server refused the Job's create (a 4xx: it will never exist): undo what beforeCreate made. */
  createFailed?(dispatch: DispatchRecord): Promise<void>;
  /**
   * Before the tick's pod list: the Jobs whose pods the coming housekeeping needs (our Jobs as
   * listed are given), or undefined when it needs none (between two sweeps). The scaler lists
   * only those, so a tick without a sweep lists no pod for housekeeping.
   */
  podsToSweep?(view: { readonly jobs: readonly V1Job[]; readonly now: number }): readonly string[] | undefined;
  /** Once per tick after the reconcile. Its failures are logged, never fail the tick. */
  housekeeping?(view: TickView): Promise<void>;
}

export interface ScalerLog {
  debug(message: string, extra: Record<string, unknown>): void;
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

/** CloudWatch metrics (scaler/metrics.ts). */
export interface ScalerMetrics {
  /** Called once per queue per tick with the decision, the agents reserved for it and how long it took. */
  decision(decision: Decision, reserved: number, latencyMs: number): void;
  /** Once per queue per tick when back-off is on: its step (0 = healthy) and new start failures. */
  backoff?(queue: string, step: number, startFailures: number): void;
  /** Once per queue per tick whose decision had scaleDown: agents stopped, and stops that failed. */
  stops?(queue: string, stopped: number, failed: number): void;
}

export interface ScalerPorts {
  readonly events: EventSource;
  readonly ledger: LedgerStore;
  readonly limiter: LimiterStore;
  readonly cluster: ClusterPort;
  readonly jobs: JobFactory;
  /**
   * Per provider, gives its events without a queue (GitLab: the Job Hook has no job tags) their
   * queue, or says no queue can take one, or that it cannot tell yet (the event stays in SQS).
   * An event whose provider has no router stays in SQS (then the dead-letter queue).
   */
  readonly routers?: PerProvider<EventRouter>;
  readonly log: ScalerLog;
  readonly metrics?: ScalerMetrics;
  /** Per provider, its steps around a Job's creation (GitHub just-in-time runners). */
  readonly hooks?: PerProvider<DispatchHooks>;
  /**
   * The provider whose hooks run around a queue's Jobs (provider-ports.ts hooksFor); absent or
   * undefined: none run for that queue.
   */
  readonly queueProvider?: (queue: string) => Provider | undefined;
  /** Back-off of queues whose agents fail at start (needs cluster.listAgentPods). */
  readonly backoff?: QueueBackoff;
  /** Epoch milliseconds. */
  readonly now: () => number;
  /** Waits on the same clock as now() (default: real time). */
  readonly sleep?: (ms: number) => Promise<void>;
  /** The adaptive warm pool's measurements (WARM_POOL=adaptive); absent: no pool. */
  readonly warmPool?: WarmPoolTracker;
  /** WARM_POOL=learned: the arrivals learned per bucket of the week, kept in the ledger table (warm-learning.ts). */
  readonly warmLearning?: WarmLearning;
  /** Recovers jobs whose webhook delivery was lost (provider-reconcile.ts); absent: off. */
  readonly providers?: ProviderReconciler;
  /**
   * Agents that exited before their CI job's `finished` event was applied (core/decision.ts):
   * no agent is made again for such a job while the events lag. Absent: not counted.
   */
  readonly exited?: ExitedAgents;
}

export interface QueueLimits {
  readonly minAgents: number;
  readonly maxAgents: number;
}

export interface ScalerSettings {
  readonly queues: readonly string[];
  readonly limits: Readonly<Record<string, QueueLimits>>;
  /** How long a dispatch may stay in status intent (INTENT_LEASE_SECONDS) before it is released. */
  readonly intentLeaseMs: number;
  /** Most parallel drainers in a tick (default 4); one more starts on each full receive. */
  readonly drainConcurrency?: number;
  /**
   * Longest a tick drains before it provisions (default 5 s): with a backlog, agents for the
   * events drained so far are not held up by the rest; the next tick drains on at once. Within
   * it, loop.ts gives each tick twice what the last provisioning took, at least 150 ms.
   */
  readonly drainBudgetMs?: number;
  /** Attempts per queue per tick to reserve its tokens when concurrent scalers conflict. */
  readonly reserveAttempts?: number;
  /**
   * The grace period of an agent's stop (the Job's activeDeadlineSeconds, JOB_ACTIVE_DEADLINE_SECONDS):
   * a decision's scaleDown deletes that many idle agents' pods (scale-down.ts). Absent: none stopped.
   */
  readonly stopGraceSeconds?: number;
}
