/** Read by more than one function. Each variable declared once: the README row and the error text derive from it. */
import { PROVIDERS } from '../../../core/job-event.js';
import type { Declaration } from '../declaration.js';

/** `"buildkite"|"github"|...`: the providers, as QUEUE_OVERRIDES names them. */
const PROVIDER_NAMES = /* @__PURE__ */ PROVIDERS.map((p) => `"${p}"`).join('|');

export const COMMON_VARIABLES = [
  {
    name: 'EVENTS_QUEUE_URL',
    functions: ['webhook', 'scaler'],
    required: true,
    expected: 'an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)',
    description:
      'Queue the webhook records normalised job events in and the scaler drains. A name ending in `.fifo` makes the webhook set FIFO deduplication and group ids.',
  },
  {
    name: 'QUEUES',
    functions: ['webhook', 'scaler'],
    default: 'default',
    expected: 'a comma-separated list of queue names (letters, digits, . _ -)',
    description:
      "CI queues this deployment serves, in precedence order. A job counts for the first queue whose agents could take it, by the provider's own rule (docs/providers.md, Matching jobs to queues). Jobs no queue can serve are answered 202 and ignored.",
  },
  {
    name: 'QUEUE_OVERRIDES',
    functions: ['webhook', 'scaler'],
    default: '{}',
    expected: `a JSON object keyed by queue name, each value {"minAgents"?: int, "maxAgents"?: int, "jobTemplate"?: string, "provider"?: ${PROVIDER_NAMES}, "agentTags"?: ["key=value", ...], "runnerLabels"?: [string, ...], "runnerTags"?: [string, ...], "runUntagged"?: boolean, "runnerTokenSecret"?: string}`,
    description:
      "Per-queue overrides of MIN_AGENTS, MAX_AGENTS and JOB_TEMPLATE, and what the queue's agents carry: Buildkite agent tags (default `queue=<name>`), GitHub runner labels (default `self-hosted`, `linux`, `x64`, `<name>`), GitLab runner tags (default `<name>`) and whether its GitLab runners take untagged jobs (default false); `runnerTokenSecret` names the queue's own GitLab runner token Secret. `provider` defaults to the template's (buildkite/github/gitlab); a queue with a custom template and no provider counts jobs of any provider.",
  },
  {
    name: 'LOG_LEVEL',
    functions: ['webhook', 'scaler', 'cache'],
    default: 'INFO',
    enum: ['DEBUG', 'INFO', 'WARN', 'ERROR'],
    description: 'Minimum level of the structured JSON logs.',
  },
] as const satisfies readonly Declaration[];
