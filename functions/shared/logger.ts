/** Structured JSON logging (Powertools). Never log a secret, a token or a signature. */
import { Logger } from '@aws-lambda-powertools/logger';

const level = (process.env.LOG_LEVEL ?? 'INFO').toUpperCase();

export function createLogger(serviceName: string): Logger {
  return new Logger({
    serviceName,
    logLevel: (['DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT'].includes(level) ? level : 'INFO') as 'INFO',
  });
}
