/**
 * AWS clients, created once per container. The SDK honours the standard service endpoint
 * variables (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SSM, ...) so the
 * same code runs against the local emulators. SQS calls always go to the client's endpoint, never
 * to the host inside a queue URL (useQueueUrlAsEndpoint: false).
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SSMClient } from '@aws-sdk/client-ssm';

let sqs: SQSClient | undefined;
let dynamo: DynamoDBDocumentClient | undefined;
let ssm: SSMClient | undefined;

export function sqsClient(): SQSClient {
  sqs ??= new SQSClient({ useQueueUrlAsEndpoint: false, maxAttempts: 3 });
  return sqs;
}

export function dynamoClient(): DynamoDBDocumentClient {
  dynamo ??= DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 5 }), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return dynamo;
}

export function ssmClient(): SSMClient {
  ssm ??= new SSMClient({ maxAttempts: 3 });
  return ssm;
}

/** For tests and the local stack: forget the cached clients after changing endpoints. */
export function resetAwsClients(): void {
  sqs?.destroy();
  dynamo?.destroy();
  ssm?.destroy();
  sqs = dynamo = ssm = undefined;
}
