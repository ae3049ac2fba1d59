/** Structured JSON logging (Powertools). Never log a secret, a token or a signature. */
import { Logger } from '@aws-lambda-powertools/logger';
import type { LogLevel } from './config.js';

/** A logger at the validated LOG_LEVEL of the function's configuration. */
export function createLogger(serviceName: string, logLevel: LogLevel): Logger {
  return new Logger({ serviceName, logLevel });
}
