/**
 * THE provider registry: one descriptor per name of the Provider union (core/job-event.ts
 * PROVIDERS). `satisfies` makes a missing name, an extra key, or a descriptor filed under another
 * name a compile error. Walk-through: docs/adding-a-provider.md.
 */
import { PROVIDERS, type Provider } from '../job-event.js';
import { buildkiteProvider } from './buildkite.js';
import type { ProviderDescriptor } from './descriptor.js';
import { githubProvider } from './github.js';
import { gitlabProvider } from './gitlab.js';

export const providers = {
  buildkite: buildkiteProvider,
  github: githubProvider,
  gitlab: gitlabProvider,
} as const satisfies { readonly [P in Provider]: ProviderDescriptor<P> };

/** The descriptor of a provider, as the common type. */
export function descriptorOf(provider: Provider): ProviderDescriptor {
  const descriptor: ProviderDescriptor | undefined = providers[provider];
  // Only reachable where the compiler was not asked (a name added to PROVIDERS, no descriptor).
  if (!descriptor) throw new Error(`provider ${provider} has no descriptor in functions/core/providers/registry.ts`);
  return descriptor;
}

/** Every descriptor, in the order of PROVIDERS. */
export function allProviders(): readonly ProviderDescriptor[] {
  return PROVIDERS.map(descriptorOf);
}

/** The provider whose built-in template this JOB_TEMPLATE value names; undefined for a file path. */
export function providerOfTemplate(template: string): Provider | undefined {
  return PROVIDERS.find((p) => providers[p].template === template);
}
