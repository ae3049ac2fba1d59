/** Read by the cache. Each variable declared once: the README row and the error text derive from it. */
import type { Declaration } from '../declaration.js';

export const CACHE_VARIABLES = [
  {
    name: 'CACHE_BUCKET',
    functions: ['cache'],
    required: true,
    expected: 'an S3 bucket name',
    description: 'Bucket holding the build cache entries (one object per entry, under <namespace>/<serviceaccount>/).',
  },
  {
    name: 'CACHE_TABLE',
    functions: ['cache'],
    required: true,
    expected: 'a DynamoDB table name',
    description: 'Table holding the committed cache entries (infra/aws/cache.yml).',
  },
  {
    name: 'CACHE_TOKEN_ISSUER',
    functions: ['cache'],
    expected: "an http(s) URL, the cluster's service account issuer",
    description:
      "Issuer (`iss`) of the agents' projected ServiceAccount tokens; its keys come from `<issuer>/.well-known/openid-configuration` unless CACHE_JWKS_URL is set. On EKS: the cluster's OpenID Connect provider URL. Unset: the cache is off and its routes answer 404.",
  },
  {
    name: 'CACHE_JWKS_URL',
    functions: ['cache'],
    expected: 'an http(s) URL of a JWKS document',
    description: "Where the issuer's public keys are, when not from its discovery document.",
  },
  {
    name: 'CACHE_TOKEN_AUDIENCE',
    functions: ['cache'],
    default: 'ci-cache',
    expected: 'a non-empty string',
    description:
      "Audience the agents' projected tokens must carry (the `audience` of the token volume in infra/k8s/agents).",
  },
  {
    name: 'CACHE_MAX_ENTRY_BYTES',
    functions: ['cache'],
    default: '10737418240',
    int: { min: 1, max: 'CACHE_SCOPE_MAX_BYTES' },
    description: 'Largest entry; a larger save is refused before any upload (413).',
  },
  {
    name: 'CACHE_SCOPE_MAX_BYTES',
    functions: ['cache'],
    default: '107374182400',
    int: { min: 1 },
    description: 'Bytes one scope (ServiceAccount) may hold; beyond it the least recently used entries are evicted.',
  },
  {
    name: 'CACHE_RETENTION_DAYS',
    functions: ['cache'],
    default: '7',
    int: { min: 1, max: 365 },
    description:
      'An entry not saved or restored for this long is deleted (at the next save in its scope, or by the daily sweep).',
  },
  {
    name: 'CACHE_PART_BYTES',
    functions: ['cache'],
    default: '8388608',
    int: { min: 5 * 1024 * 1024, max: 5 * 1024 * 1024 * 1024 },
    description:
      'Size of the multipart parts (uploaded in parallel); larger for entries that would need more than 10,000 parts.',
  },
] as const satisfies readonly Declaration[];
