/**
 * DynamoDB Local for the tests. The launcher lives in tools/local/dynamodb-local.ts (the
 * local stack, `npm start`, uses the same one); this module keeps the tests' API.
 */
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { localDynamoDbClient } from '../../tools/local/dynamodb-local.js';

export {
  createLedgerTable,
  type DynamoDbLocal,
  freePort,
  LEDGER_TABLE_YAML,
  localDynamoDbClient,
  startDynamoDbLocal,
} from '../../tools/local/dynamodb-local.js';

/** Points the product's AWS clients (functions/shared/aws.ts) at the emulator. */
export function useDynamoDbLocal(endpoint: string): void {
  process.env.AWS_ENDPOINT_URL_DYNAMODB = endpoint;
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
}

/**
 * A document client on the emulator (2 attempts) that counts the requests it sends, by operation
 * (`GetItem`, `BatchWriteItem`, ...; every attempt counts), into `requests`.
 */
export function countingDocClient(endpoint: string, requests: Record<string, number>): DynamoDBDocumentClient {
  const docClient = DynamoDBDocumentClient.from(localDynamoDbClient(endpoint, 2), {
    marshallOptions: { removeUndefinedValues: true },
  });
  docClient.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? '?').replace(/Command$/, '');
      requests[operation] = (requests[operation] ?? 0) + 1;
      return next(args);
    },
    { step: 'deserialize', name: 'countRequests' },
  );
  return docClient;
}
