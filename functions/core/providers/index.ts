/** The provider modules by name. */
import type { Provider } from '../job-event.js';
import { buildkite } from './buildkite.js';
import { github } from './github.js';
import { gitlab } from './gitlab.js';
import type { ProviderModule } from './types.js';

export const PROVIDER_MODULES: Readonly<Record<Provider, ProviderModule>> = { buildkite, github, gitlab };

export * from './types.js';
export { buildkite, github, gitlab };
