/**
 * DynamoDB Local for the tests. The launcher lives in tools/local/dynamodb-local.ts (the
 * local stack, `npm start`, uses the same one); this module keeps the tests' API.
 */
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
