/**
 * The SQS emulator (fauxqs, the real SQS JSON protocol) in this process on 127.0.0.1, with the
 * events queue and its dead-letter queue created from infra/aws/queues.yml (through
 * infra/aws/definitions.ts, which fills in serverless.yml's parameters): the same visibility
 * timeout, retention and redrive policy as the deployed queues. `startFauxqs` and `queueDepth` are
 * also the tests' SQS harness's (test/support/sqs.ts).
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

export interface Fauxqs {
  /** http://127.0.0.1:<port>: the value of AWS_ENDPOINT_URL_SQS. */
  readonly endpoint: string;
  readonly port: number;
  /** A client pointed at the emulator (region us-east-1, dummy credentials). */
  readonly client: SQSClient;
  /** Destroys the client and closes the emulator. */
  stop(): Promise<void>;
}

export interface FauxqsOptions {
  /** Port on 127.0.0.1 (default: a free one). */
  readonly port?: number;
  /** The client's dummy access key id and secret (default `local`). */
  readonly credential?: string;
  /** The client's attempts per request (default 2). */
  readonly maxAttempts?: number;
}

/** fauxqs listening on 127.0.0.1, with a client pointed at it. */
/** A value fauxqs must have answered with. */
function created(value: string | undefined, queue: string): string {
  if (!value) throw new Error(`fauxqs did not answer for queue ${queue}`);
  return value;
}

export async function startFauxqs(options: FauxqsOptions = {}): Promise<Fauxqs> {
  const app = buildApp({ logger: false });
  await app.listen({ port: options.port ?? 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('fauxqs did not bind a TCP port');
  const endpoint = `http://127.0.0.1:${address.port}`;
  const credential = options.credential ?? 'local';
  const client = new SQSClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: credential, secretAccessKey: credential },
    useQueueUrlAsEndpoint: false,
    maxAttempts: options.maxAttempts ?? 2,
  });
  return {
    endpoint,
    port: address.port,
    client,
    stop: async () => {
      client.destroy();
      await app.close();
    },
  };
}

/** Messages in a queue: ApproximateNumberOfMessages + NotVisible + Delayed. */
export async function queueDepth(client: SQSClient, url: string): Promise<number> {
  const out = await client.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  const a = out.Attributes ?? {};
  return (
    Number(a.ApproximateNumberOfMessages ?? 0) +
    Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) +
    Number(a.ApproximateNumberOfMessagesDelayed ?? 0)
  );
}

export async function startSqsLocal(options: SqsLocalOptions = {}): Promise<SqsLocal> {
  const { endpoint, client, stop } = await startFauxqs(options.port === undefined ? {} : { port: options.port });
  try {
    const defs = queueDefinitions();
    const name = options.queueName ?? 'ci-agent-autoscaler-local-events';
    const dlq = await client.send(
      new CreateQueueCommand({
        QueueName: `${name}-dlq`,
        Attributes: { MessageRetentionPeriod: String(defs.deadLetter.messageRetentionSeconds) },
      }),
    );
    const dlqUrl = created(dlq.QueueUrl, `${name}-dlq`);
    const { Attributes } = await client.send(
      new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] }),
    );
    const dlqArn = created(Attributes?.QueueArn, `${name}-dlq (its ARN)`);
    const events = await client.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: {
          VisibilityTimeout: String(defs.events.visibilityTimeoutSeconds),
          MessageRetentionPeriod: String(defs.events.messageRetentionSeconds),
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: dlqArn,
            maxReceiveCount: String(defs.events.maxReceiveCount),
          }),
        },
      }),
    );
    const eventsUrl = created(events.QueueUrl, name);
    return {
      endpoint,
      eventsQueueUrl: eventsUrl,
      deadLetterQueueUrl: dlqUrl,
      depth: async () => ({
        events: await queueDepth(client, eventsUrl),
        deadLetter: await queueDepth(client, dlqUrl),
      }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
