/**
 * Lambda entry point of the webhook (API Gateway HTTP API payload v2, or a function URL).
 * Configuration is read once, at cold start: a bad environment variable fails the import with a
 * ConfigError naming the variable, its value and what is expected.
 */

import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { SecretStore } from '../adapters/secrets/secret-store.js';
import { sendEvent } from '../adapters/sqs/events-queue.js';
import { loadWebhookConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { createWebhookHandler, type WebhookEvent, type WebhookResult } from './app.js';

const config = loadWebhookConfig();
const logger = createLogger('webhook', config.logLevel);

const webhook = createWebhookHandler({
  config,
  queue: { sendEvent: (event) => sendEvent(config.eventsQueueUrl, event) },
  secrets: new SecretStore(config.secrets),
  logger,
});

export const handler = middy<WebhookEvent, WebhookResult>(webhook).use(injectLambdaContext(logger));
