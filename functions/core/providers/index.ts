/** The provider modules and their registry. */
export type { AgentTagsKey, OverrideKey, ProviderDescriptor } from './descriptor.js';
export { allProviders, descriptorOf, providerOfTemplate, providers } from './registry.js';
export * from './types.js';
