/**
 * The SQS emulator (fauxqs, the real SQS JSON protocol) in this process on 127.0.0.1, with the
 * events queue and its dead-letter queue created from infra/aws/queues.yml (through
 * infra/aws/definitions.ts, which fills in serverless.yml's parameters): the same visibility
 * timeout, retention and redrive policy as the deployed queues.
 */
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';
import { queueDefinitions } from '../../infra/aws/definitions.js';

export interface SqsLocal {
  readonly endpoint: string;
  readonly eventsQueueUrl: string;
  readonly deadLetterQueueUrl: string;
  /** Messages in the events queue (visible + in flight + delayed) and in the DLQ. */
  depth(): Promise<{ events: number; deadLetter: number }>;
  stop(): Promise<void>;
}

export interface SqsLocalOptions {
  /** Port on 127.0.0.1 (default: a free one). */
  readonly port?: number;
  /** Events queue name; the DLQ is `<name>-dlq` (default `ci-agent-autoscaler-local-events`). */
  readonly queueName?: string;
}

export async function startSqsLocal(options: SqsLocalOptions = {}): Promise<SqsLocal> {
  const app = buildApp({ logger: false });
  await app.listen({ port: options.port ?? 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('fauxqs did not bind a TCP port');
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new SQSClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    useQueueUrlAsEndpoint: false,
    maxAttempts: 2,
  });
  const stop = async (): Promise<void> => {
    client.destroy();
    await app.close();
  };
  try {
    const defs = queueDefinitions();
    const name = options.queueName ?? 'ci-agent-autoscaler-local-events';
    const dlq = await client.send(
      new CreateQueueCommand({
        QueueName: `${name}-dlq`,
        Attributes: { MessageRetentionPeriod: String(defs.deadLetter.messageRetentionSeconds) },
      }),
    );
    const dlqArn = (
      await client.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl!, AttributeNames: ['QueueArn'] }))
    ).Attributes!.QueueArn!;
    const events = await client.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: {
          VisibilityTimeout: String(defs.events.visibilityTimeoutSeconds),
          MessageRetentionPeriod: String(defs.events.messageRetentionSeconds),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: String(defs.events.maxReceiveCount) }),
        },
      }),
    );
    const count = async (url: string): Promise<number> => {
      const a =
        (
          await client.send(
            new GetQueueAttributesCommand({
              QueueUrl: url,
              AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'],
            }),
          )
        ).Attributes ?? {};
      return (
        Number(a.ApproximateNumberOfMessages ?? 0) +
        Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) +
        Number(a.ApproximateNumberOfMessagesDelayed ?? 0)
      );
    };
    return {
      endpoint,
      eventsQueueUrl: events.QueueUrl!,
      deadLetterQueueUrl: dlq.QueueUrl!,
      depth: async () => ({ events: await count(events.QueueUrl!), deadLetter: await count(dlq.QueueUrl!) }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
