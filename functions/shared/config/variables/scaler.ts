/** Read by the scaler. Each variable declared once: the README row and the error text derive from it. */
import type { Declaration } from '../declaration.js';

/** Read by the webhook too (whose jobs are ours), declared here for its place in the table. */
export const GITHUB_RUNNER_OWNER = {
  name: 'GITHUB_RUNNER_OWNER',
  functions: ['webhook', 'scaler'],
  expected: 'an organisation (`my-org`) or a repository (`owner/repo`)',
  description:
    'Where the runners are registered: organisation runners, or repository runners. The webhook counts only the jobs of this owner or repository unless GITHUB_REPOSITORIES says otherwise.',
} as const satisfies Declaration;

export const SCALER_VARIABLES = [
  {
    name: 'LEDGER_TABLE',
    functions: ['scaler'],
    required: true,
    expected: 'a DynamoDB table name',
    description: 'Table holding the job ledger, the in-flight limiter and its dispatches.',
  },
  {
    name: 'MIN_AGENTS',
    functions: ['scaler'],
    default: '0',
    int: { min: 0 },
    description: 'Warm floor: agents kept in flight per queue even with no pending job (a floor, not added to demand).',
  },
  {
    name: 'MAX_AGENTS',
    functions: ['scaler'],
    default: '10',
    int: { min: 'MIN_AGENTS', floor: 1 },
    description: 'Hard cap of agents in flight per queue, across all concurrent scaler invocations.',
  },
  {
    name: 'WARM_POOL',
    functions: ['scaler'],
    default: 'off',
    enum: ['off', 'adaptive', 'learned'],
    description:
      "adaptive: keep idle agents ready on top of pending demand, sized from the arrivals the ledger saw in the last 10 minutes and the agent start-up time measured on our Jobs; 0 when arrivals stop, always within MIN_AGENTS..MAX_AGENTS. learned: the same, and the scaler learns each queue's arrivals per 15-minute bucket of the week, kept in the ledger table (item WARM / <queue>); once a whole day is learned the pool is sized one start-up ahead from it (docs/operations.md). Its inputs are in the `scaling decision` log line. With either, idle agents beyond the pool when its target drops are stopped (their pods deleted gracefully: docs/operations.md, needs `delete` on pods in the Role).",
  },
  {
    name: 'KUBE_NAMESPACE',
    functions: ['scaler'],
    default: 'ci-agents',
    expected: 'a Kubernetes namespace name',
    description: 'Namespace the agent Jobs are created and listed in.',
  },
  {
    name: 'JOB_TTL_SECONDS_AFTER_FINISHED',
    functions: ['scaler'],
    default: '600',
    int: { min: 'INTENT_LEASE_SECONDS' },
    description:
      'Kubernetes deletes a finished agent Job this long after it finished. At least the intent lease, so a retried create can never recreate a Job that already ran.',
  },
  {
    name: 'JOB_ACTIVE_DEADLINE_SECONDS',
    functions: ['scaler'],
    default: '22800',
    int: { min: 60 },
    description:
      "An agent Job still running after this long is stopped by Kubernetes (bounds a stuck agent). The default, 6 h 20 min, lets a CI job run GitHub's default `timeout-minutes` (360) after up to 20 min of start and idle wait; GitLab's default job timeout is 1 h, Buildkite sets none. Raise it for longer jobs.",
  },
  {
    name: 'INTENT_LEASE_SECONDS',
    functions: ['scaler'],
    default: '120',
    int: { min: 10, max: 3600 },
    description: 'A dispatch whose Job could not be created is retried each tick and released after this long.',
  },
  {
    name: 'LEDGER_RETENTION_DAYS',
    functions: ['scaler'],
    default: '7',
    int: { min: 1, max: 365 },
    description:
      'Finished and cancelled CI jobs stay in the ledger this long (DynamoDB TTL), to absorb late duplicates.',
  },
  {
    name: 'LEDGER_OPEN_MAX_AGE_HOURS',
    functions: ['scaler'],
    default: '24',
    int: { min: 1, max: 720 },
    description:
      'A CI job still scheduled or running this long after its last event no longer counts (its finished/cancelled webhook was lost), so it cannot keep an agent provisioned forever.',
  },
  {
    name: 'SCALER_BUDGET_SECONDS',
    functions: ['scaler'],
    default: '58',
    int: { min: 1, max: 890, note: 'the function timeout keeps 8 s more' },
    description:
      'How long one invocation keeps ticking (long-polling for events) before it returns. Close to the schedule period, so there is almost no gap between invocations; overlaps are safe.',
  },
  {
    name: 'SCALER_POLL_SECONDS',
    functions: ['scaler'],
    default: '20',
    int: { min: 1, max: 20 },
    description:
      'Long-poll wait for new events when no CI job is waiting: an event ends the wait at once; without one the scaler still reconciles this often. While jobs wait for agents it re-ticks every 2 s.',
  },
  {
    name: 'AGENT_BACKOFF_BASE_SECONDS',
    functions: ['scaler'],
    default: '30',
    int: { min: 1, max: 3600 },
    description:
      "A queue whose agents fail at start (failed pod, CreateContainerConfigError, image pull error, unschedulable) creates no Job for this long, doubling with each further failure up to AGENT_BACKOFF_MAX_SECONDS; the queue's first healthy agent resets it. Other queues are not held.",
  },
  {
    name: 'AGENT_BACKOFF_MAX_SECONDS',
    functions: ['scaler'],
    default: '600',
    int: { min: 'AGENT_BACKOFF_BASE_SECONDS', max: 86_400 },
    description: 'Longest back-off of a queue whose agents keep failing at start.',
  },
  {
    name: 'AGENT_UNSCHEDULABLE_SECONDS',
    functions: ['scaler'],
    default: '300',
    int: { min: 10, max: 86_400 },
    description: 'An agent pod unschedulable for longer than this counts as failed at start (back-off).',
  },
  {
    name: 'GITHUB_APP_ID',
    functions: ['scaler'],
    expected: 'the numeric App ID (or the Client ID) of a GitHub App',
    description:
      'GitHub App that registers just-in-time runners (permission: self-hosted runners read/write on the organisation, or administration on the repository). Required with GITHUB_RUNNER_OWNER and a private key when a queue uses the `github` template.',
  },
  {
    name: 'GITHUB_APP_PRIVATE_KEY',
    functions: ['scaler'],
    expected: 'the PEM private key of the GitHub App',
    description: 'The App private key, plain (local use). In AWS use GITHUB_APP_PRIVATE_KEY_PARAMETER.',
    secret: true,
  },
  {
    name: 'GITHUB_APP_PRIVATE_KEY_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/", holding the PEM private key',
    description: 'SSM parameter holding the App private key; fetched once per container.',
  },
  GITHUB_RUNNER_OWNER,
  {
    name: 'GITHUB_RUNNER_GROUP_ID',
    functions: ['scaler'],
    default: '1',
    int: { min: 1 },
    description: 'Runner group of the organisation runners (1 is the Default group; repository runners use 1).',
  },
  {
    name: 'GITHUB_WEBHOOK_ID',
    functions: ['scaler'],
    int: { min: 1 },
    expected:
      'the integer id of the organisation or repository webhook that delivers `workflow_job` (X-GitHub-Hook-ID)',
    description:
      "The webhook whose failed deliveries the scaler asks GitHub to redeliver (GitHub does not retry them), every PROVIDER_RECONCILE_SECONDS, on GITHUB_RUNNER_OWNER's hooks. The App then needs the organisation (or repository) webhooks permission, read and write. Unset: no redelivery.",
  },
  {
    name: 'BUILDKITE_ORGANIZATION',
    functions: ['scaler'],
    expected: 'a Buildkite organisation slug',
    description:
      'Organisation whose scheduled jobs the scaler recovers every PROVIDER_RECONCILE_SECONDS (at most 2 requests), with BUILDKITE_API_TOKEN(_PARAMETER). Unset: no recovery.',
  },
  {
    name: 'BUILDKITE_API_TOKEN',
    functions: ['scaler'],
    expected: 'a Buildkite API access token with the read_builds scope',
    description: 'Token for the recovery of scheduled jobs, plain (local use).',
    secret: true,
  },
  {
    name: 'BUILDKITE_API_TOKEN_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description: 'SSM parameter holding the read_builds token.',
  },
  {
    name: 'BUILDKITE_API_URL',
    functions: ['scaler'],
    default: 'https://api.buildkite.com/v2',
    expected: 'an http(s) URL',
    description: 'Buildkite REST API base URL.',
  },
  {
    name: 'PROVIDER_RECONCILE_SECONDS',
    functions: ['scaler'],
    default: '120',
    int: { min: 30, max: 3600, off: 0 },
    description:
      "How often the scaler recovers CI jobs whose webhook delivery was lost: redelivers GitHub's failed deliveries (GITHUB_WEBHOOK_ID: at most 3 list calls and 10 redeliveries) lists the pending jobs of GITLAB_PROJECTS (one call per project) and the scheduled jobs of BUILDKITE_ORGANIZATION (at most 2 calls). Providers without credentials are skipped.",
  },
  {
    name: 'GITHUB_API_URL',
    functions: ['scaler'],
    default: 'https://api.github.com',
    expected: 'an http(s) URL',
    description: 'GitHub REST API base URL (GitHub Enterprise Server: `https://HOST/api/v3`).',
  },
  {
    name: 'GITLAB_API_URL',
    functions: ['scaler'],
    default: 'https://gitlab.com/api/v4',
    expected: 'an http(s) URL of a GitLab REST API v4',
    description:
      "Where the scaler looks up a GitLab job's tags (`GET /projects/:id/jobs/:job_id`, once per CI job): the Job Hook does not carry them.",
  },
  {
    name: 'GITLAB_API_TOKEN',
    functions: ['scaler'],
    expected: 'a GitLab access token with the read_api scope',
    description:
      'Token for the job-tags lookup, plain (local use). Without it and GITLAB_API_TOKEN_PARAMETER, GitLab events cannot be routed and stay in the events queue (then its dead-letter queue).',
    secret: true,
  },
  {
    name: 'GITLAB_API_TOKEN_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description: 'SSM parameter holding the read_api token; fetched once per container, refreshed after a 401.',
  },
  {
    name: 'KUBECONFIG',
    functions: ['scaler'],
    expected: 'a path to a kubeconfig file',
    description: 'Reach the cluster as kubectl would (local runs, tests, non-EKS clusters).',
  },
  {
    name: 'KUBECONFIG_PARAMETER',
    functions: ['scaler'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/", holding a kubeconfig',
    description: 'Reach any cluster with a kubeconfig kept in SSM.',
  },
  {
    name: 'EKS_CLUSTER_NAME',
    functions: ['scaler'],
    expected: 'an EKS cluster name',
    description:
      "Reach an EKS cluster with a token presigned from the function's IAM role. Endpoint and CA come from EKS_CLUSTER_ENDPOINT/EKS_CLUSTER_CA or eks:DescribeCluster.",
  },
  {
    name: 'EKS_CLUSTER_ENDPOINT',
    functions: ['scaler'],
    expected: 'an https:// URL',
    description: 'EKS API server endpoint (skips eks:DescribeCluster when given with EKS_CLUSTER_CA).',
  },
  {
    name: 'EKS_CLUSTER_CA',
    functions: ['scaler'],
    expected: 'the base64 certificate authority data of the cluster',
    description: 'EKS cluster CA (base64, as in a kubeconfig).',
  },
] as const satisfies readonly Declaration[];
