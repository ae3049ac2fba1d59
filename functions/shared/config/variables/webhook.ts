/** Read by the webhook. Each variable declared once: the README row and the error text derive from it. */
import type { Declaration } from '../declaration.js';

export const WEBHOOK_VARIABLES = [
  {
    name: 'BUILDKITE_WEBHOOK_SECRET',
    functions: ['webhook'],
    expected: 'the token or signing secret of the Buildkite webhook',
    description:
      'Buildkite webhook token/signature secret, plain (local use). Without it and BUILDKITE_WEBHOOK_SECRET_PARAMETER the Buildkite route answers 404.',
    secret: true,
  },
  {
    name: 'BUILDKITE_WEBHOOK_SECRET_PARAMETER',
    functions: ['webhook'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description:
      'SSM parameter holding the Buildkite secret; fetched once per container, refreshed when verification fails.',
  },
  {
    name: 'GITHUB_WEBHOOK_SECRET',
    functions: ['webhook'],
    expected: 'one or more secrets, comma-separated (several during a rotation)',
    description:
      'GitHub webhook secret(s), plain (local use). Without it and GITHUB_WEBHOOK_SECRET_PARAMETER the GitHub route answers 404.',
    secret: true,
  },
  {
    name: 'GITHUB_WEBHOOK_SECRET_PARAMETER',
    functions: ['webhook'],
    expected:
      'an SSM Parameter Store name (SecureString) starting with "/"; its value may hold several comma-separated secrets',
    description: 'SSM parameter holding the GitHub secret(s).',
  },
  {
    name: 'GITLAB_WEBHOOK_TOKEN',
    functions: ['webhook'],
    expected: 'the secret token of the GitLab webhook',
    description:
      'GitLab webhook secret token, plain (local use). Without it and GITLAB_WEBHOOK_TOKEN_PARAMETER the GitLab route answers 404.',
    secret: true,
  },
  {
    name: 'GITLAB_WEBHOOK_TOKEN_PARAMETER',
    functions: ['webhook'],
    expected: 'an SSM Parameter Store name (SecureString) starting with "/"',
    description: 'SSM parameter holding the GitLab token.',
  },
  {
    name: 'JOB_TEMPLATE',
    functions: ['webhook', 'scaler'],
    default: 'buildkite',
    // Each provider's template name (checked by test/unit/providers-registry.test.ts): written out,
    // not computed, so that the bundles that never read this list (cache) can drop it.
    expected: 'buildkite, github, gitlab, or a path to a Job template YAML file',
    description:
      'Agent Job template (files in infra/k8s/agents/) used for queues without an override; a built-in name also sets which provider those queues serve.',
  },
  {
    name: 'BUILDKITE_DEFAULT_QUEUE',
    functions: ['webhook'],
    default: 'default',
    expected: 'a queue name (letters, digits, . _ -)',
    description: "The queue a Buildkite job without a `queue=` agent rule targets: your cluster's default queue key.",
  },
  {
    name: 'GITHUB_REPOSITORIES',
    functions: ['webhook'],
    expected: 'a comma-separated list of owners (`my-org`) and repositories (`owner/repo`)',
    description:
      'GitHub jobs counted: those of these owners and repositories; others are answered 202 `ignored`. Unset: the jobs of GITHUB_RUNNER_OWNER when it is set, else every job.',
  },
  {
    name: 'GITLAB_PROJECTS',
    functions: ['webhook', 'scaler'],
    expected: 'a comma-separated list of GitLab project ids (`380`) and full paths (`group/project`)',
    description:
      "GitLab jobs counted: those of these projects; others are answered 202 `ignored`. Unset: every project's. The scaler also lists these projects' pending jobs to recover lost deliveries (PROVIDER_RECONCILE_SECONDS).",
  },
  {
    name: 'BUILDKITE_CLUSTERS',
    functions: ['webhook', 'scaler'],
    expected: 'a comma-separated list of Buildkite cluster UUIDs',
    description:
      "Buildkite jobs counted: those of pipelines in these clusters (`pipeline.cluster_id`); others are answered 202 `ignored`. Unset: every cluster's.",
  },
  {
    name: 'WEBHOOK_MAX_BODY_BYTES',
    functions: ['webhook'],
    default: '1048576',
    int: { min: 1024, max: 10 * 1024 * 1024 },
    description: 'Largest request body accepted; larger ones get 413 and are not recorded.',
  },
  {
    name: 'BUILDKITE_REPLAY_WINDOW_SECONDS',
    functions: ['webhook'],
    default: '300',
    int: { min: 1, max: 86_400 },
    description: 'How far the timestamp of a signed Buildkite request may be from now.',
  },
] as const satisfies readonly Declaration[];
