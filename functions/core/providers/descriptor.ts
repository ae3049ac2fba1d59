/**
 * A CI provider as ONE descriptor: everything the deployed code needs to know of it that is pure
 * (no I/O). Each provider module (buildkite.ts, github.ts, gitlab.ts) ends with its descriptor;
 * registry.ts lists them in `providers`, keyed by the Provider union (core/job-event.ts
 * PROVIDERS), so a name without a descriptor, or a descriptor without a name, does not compile.
 *
 * What does I/O is not here: the scaler's per-provider parts (event router, dispatch hooks, lost
 * delivery recovery) are built in functions/scaler/providers.ts from a Record keyed by the same
 * union; the local stack's signed delivery is LOCAL_DELIVERY in tools/local/ci-webhooks.ts,
 * keyed likewise.
 * Walk-through: docs/adding-a-provider.md.
 */
import type { Provider } from '../job-event.js';
import type { QueueAgents, RouteResult, Routing } from '../routing.js';
import type { ProviderModule } from './types.js';

/** The declaration of a queue (QUEUE_OVERRIDES key, QueueAgents field) the provider's rule reads. */
export type AgentTagsKey = 'agentTags' | 'runnerLabels' | 'runnerTags';

/** Keys of a queue's QUEUE_OVERRIDES entry that describe its agents for one provider. */
export type OverrideKey = Exclude<keyof QueueAgents, 'queue' | 'provider'> | 'runnerTokenSecret';

export interface ProviderDescriptor<P extends Provider = Provider> {
  /** The id: the route `/webhooks/<name>`, `JobEvent.provider`, the ledger keys. */
  readonly name: P;
  /** As written in prose: the heading of its section in docs/providers.md. */
  readonly title: string;
  /** Webhook verification and parser (which applies `route`). */
  readonly webhook: ProviderModule;
  /** The routing rule: the served queue whose agents could take a job with these tags. */
  readonly route: (jobTags: readonly string[], routing: Routing) => RouteResult;
  /** The queue declaration the rule matches against, and what the provider's agents register with. */
  readonly agentTags: AgentTagsKey;
  /** QUEUE_OVERRIDES keys that configure this provider's agents. */
  readonly overrideKeys: readonly OverrideKey[];
  /** The built-in agent Job template: `infra/k8s/agents/<template>.yaml`, also a JOB_TEMPLATE value. */
  readonly template: string;
  /** The variable holding the webhook secret, plain; `<secretVariable>_PARAMETER` names an SSM parameter. */
  readonly secretVariable: string;
  /** The request header with the provider's delivery id (logged with the request), if it sends one. */
  readonly deliveryIdHeader?: string;
}
