/**
 * SQS emulator harness for integration tests and benchmarks: fauxqs (real SQS JSON protocol)
 * listening on 127.0.0.1 on a random port, with helpers to create queues (with a dead-letter
 * queue and redrive policy), point the AWS SDK at it, and inspect or empty queues.
 *
 *   const sqs = await startSqs();
 *   const { url, dlqUrl } = await sqs.createQueue('events');   // + 'events-dlq', maxReceiveCount 3
 *   sqs.useEnv();          // AWS_ENDPOINT_URL_SQS & dummy credentials, resetAwsClients()
 *   ...
 *   await sqs.stop();
 */
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type Message,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { queueDepth, startFauxqs } from '../../tools/local/sqs-local.js';

export interface TestQueue {
  readonly name: string;
  readonly url: string;
  readonly arn: string;
  readonly dlqUrl?: string;
  readonly dlqArn?: string;
}

export interface CreateQueueOptions {
  /** Create `<name>-dlq` (or `<name>-dlq.fifo`) and a redrive policy to it (default true). */
  readonly dlq?: boolean;
  readonly maxReceiveCount?: number;
  readonly visibilityTimeoutSeconds?: number;
  /** Extra queue attributes (e.g. ContentBasedDeduplication). */
  readonly attributes?: Record<string, string>;
}

export interface SqsHarness {
  /** http://127.0.0.1:<port>: the value of AWS_ENDPOINT_URL_SQS. */
  readonly endpoint: string;
  readonly port: number;
  /** A client pointed at the emulator, for the test's own inspection. */
  readonly client: SQSClient;
  /** Creates a queue (FIFO when the name ends in `.fifo`), by default with a DLQ and redrive. */
  createQueue(name: string, options?: CreateQueueOptions): Promise<TestQueue>;
  /** Sets AWS_ENDPOINT_URL_SQS, AWS_REGION and dummy credentials, then resetAwsClients(). */
  useEnv(): void;
  /** Receives (and leaves in flight for `visibilityTimeoutSeconds`, default 0) up to `max` messages. */
  receiveAll(url: string, options?: { max?: number; visibilityTimeoutSeconds?: number }): Promise<Message[]>;
  /** ApproximateNumberOfMessages + NotVisible + Delayed. */
  depth(url: string): Promise<number>;
  purge(url: string): Promise<void>;
  /** Stops the emulator (further SQS calls fail with a connection error). */
  stop(): Promise<void>;
}

export const TEST_AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
} as const;

export async function startSqs(): Promise<SqsHarness> {
  const fauxqs = await startFauxqs({ credential: 'test', maxAttempts: 1 });
  const { endpoint, port, client } = fauxqs;
  let stopped = false;

  async function create(name: string, attributes: Record<string, string>): Promise<{ url: string; arn: string }> {
    const fifo = name.endsWith('.fifo');
    const out = await client.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: { ...(fifo ? { FifoQueue: 'true' } : {}), ...attributes },
      }),
    );
    const url = out.QueueUrl!;
    const attrs = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
    return { url, arn: attrs.Attributes!.QueueArn! };
  }

  return {
    endpoint,
    port,
    client,

    async createQueue(name, options = {}) {
      const fifo = name.endsWith('.fifo');
      const base = {
        ...(options.visibilityTimeoutSeconds === undefined
          ? {}
          : { VisibilityTimeout: String(options.visibilityTimeoutSeconds) }),
        ...options.attributes,
      };
      if (options.dlq === false) {
        const q = await create(name, base);
        return { name, ...q };
      }
      const dlqName = fifo ? `${name.slice(0, -'.fifo'.length)}-dlq.fifo` : `${name}-dlq`;
      const dlq = await create(dlqName, {});
      const q = await create(name, {
        ...base,
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: dlq.arn,
          maxReceiveCount: String(options.maxReceiveCount ?? 3),
        }),
      });
      return { name, ...q, dlqUrl: dlq.url, dlqArn: dlq.arn };
    },

    useEnv() {
      Object.assign(process.env, TEST_AWS_ENV, { AWS_ENDPOINT_URL_SQS: endpoint });
      resetAwsClients();
    },

    async receiveAll(url, options = {}) {
      const max = options.max ?? 100;
      const messages: Message[] = [];
      while (messages.length < max) {
        const out = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: Math.min(10, max - messages.length),
            VisibilityTimeout: options.visibilityTimeoutSeconds ?? 0,
            WaitTimeSeconds: 0,
            MessageAttributeNames: ['All'],
            MessageSystemAttributeNames: ['All'],
          }),
        );
        const batch = out.Messages ?? [];
        if (batch.length === 0) break;
        messages.push(...batch);
        if ((options.visibilityTimeoutSeconds ?? 0) === 0) break; // visible again at once: one pass only
      }
      return messages;
    },

    depth(url) {
      return queueDepth(client, url);
    },

    async purge(url) {
      await client.send(new PurgeQueueCommand({ QueueUrl: url }));
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      await fauxqs.stop();
    },
  };
}
