/**
 * The one configuration module (its parts in config/). Every environment variable the product
 * reads is declared once in config/variables/, with its default, bounds or choices, the functions
 * that read it, and a description. Each function validates its own variables once, at cold start;
 * every bad value is reported in one ConfigError, a line each naming the variable, the value it
 * got and what it expects. The README's configuration table is generated from the declarations
 * (`npm run docs:config`) and a test fails when the two drift apart.
 */
export type { BuildkiteApiConfig, ClusterAccess, GitHubAppConfig, GitHubRunnerOwner } from './config/access.js';
export { type CacheConfig, loadCacheConfig } from './config/cache.js';
export type { CommonConfig, LogLevel } from './config/common.js';
export type { Declaration, FunctionName, IntBounds, VariableSpec } from './config/declaration.js';
export type { QueueSettings } from './config/overrides.js';
export { ConfigError, gitlabProjects, type SecretSource } from './config/read.js';
export { configurationTable, defaultOf, VARIABLES, type VariableName } from './config/registry.js';
export { type BackoffConfig, loadScalerConfig, type ScalerConfig } from './config/scaler.js';
export { loadWebhookConfig, type WebhookConfig } from './config/webhook.js';
