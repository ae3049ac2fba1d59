import { SQSClient } from '@aws-sdk/client-sqs';
import { lazyClient } from '../../shared/aws.js';

/** SQS calls always go to the client's endpoint, never to the host inside a queue URL. */
export const sqsClient = lazyClient(() => new SQSClient({ useQueueUrlAsEndpoint: false, maxAttempts: 3 }));
