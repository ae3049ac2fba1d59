import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { createEventsQueue, parseEventBody, sendMessageInput } from '../../functions/adapters/sqs/events-queue.js';
import type { JobEvent } from '../../functions/core/job-event.js';
import { jobEvent } from '../support/job-events.js';

const event: JobEvent = jobEvent('7', 'scheduled', {
  provider: 'gitlab',
  occurredAt: '2026-11-23T10:00:00.000Z',
  receivedAt: '2026-11-23T10:00:01.000Z',
});

describe('events queue messages', () => {
  it('standard queue: JSON body and the eventId attribute, no FIFO fields', () => {
    const input = sendMessageInput('https://sqs.us-east-1.amazonaws.com/1/events', event);
    expect(JSON.parse(input.MessageBody)).toEqual(event);
    expect(input.MessageAttributes).toEqual({ eventId: { DataType: 'String', StringValue: event.id } });
    expect(input).not.toHaveProperty('MessageDeduplicationId');
    expect(input).not.toHaveProperty('MessageGroupId');
  });

  it('FIFO queue: deduplication id = event id, group = provider:jobId', () => {
    const input = sendMessageInput('https://sqs.us-east-1.amazonaws.com/1/events.fifo', event);
    expect(input).toMatchObject({ MessageDeduplicationId: event.id, MessageGroupId: 'gitlab:7' });
  });

  it('parses bodies strictly, naming what is wrong', () => {
    expect(parseEventBody(JSON.stringify(event))).toEqual({ event });
    expect(parseEventBody('{')).toEqual({ error: 'message body is not JSON' });
    expect(parseEventBody(undefined)).toEqual({ error: 'message has no body' });
    expect(parseEventBody(JSON.stringify({ ...event, kind: 'exploded' }))).toMatchObject({
      error: expect.stringMatching(/kind/),
    });
  });
});

describe('receiveEvents', () => {
  it('asks only for the receive count and the time sent (the lag): the event, id included, is in the body', async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(ReceiveMessageCommand).resolves({
      Messages: [
        {
          MessageId: 'm1',
          ReceiptHandle: 'r1',
          Body: JSON.stringify(event),
          Attributes: { ApproximateReceiveCount: '2', SentTimestamp: '1800000000000' },
        },
      ],
    });
    const queue = createEventsQueue('https://sqs.us-east-1.amazonaws.com/1/events', () => new SQSClient({}));
    expect(await queue.receiveEvents({ max: 10, waitSeconds: 1 })).toEqual([
      { receiptHandle: 'r1', messageId: 'm1', receiveCount: 2, sentAt: 1_800_000_000_000, event },
    ]);
    const input = sqs.commandCalls(ReceiveMessageCommand)[0]?.args[0].input;
    expect(input?.MessageSystemAttributeNames).toEqual(['ApproximateReceiveCount', 'SentTimestamp']);
    expect(input).not.toHaveProperty('MessageAttributeNames');
    sqs.restore();
  });
});

describe('deleteMessages', () => {
  it('reports partial failures of a batch and whole-batch errors per handle, in chunks of 10', async () => {
    const sqs = mockClient(SQSClient);
    let call = 0;
    sqs.on(DeleteMessageBatchCommand).callsFake((input: { Entries: { Id: string }[] }) => {
      call += 1;
      if (call === 1) {
        return {
          Successful: input.Entries.filter((e) => e.Id !== '3').map((e) => ({ Id: e.Id })),
          Failed: [{ Id: '3', Code: 'ReceiptHandleIsInvalid', Message: 'bad handle', SenderFault: true }],
        };
      }
      throw Object.assign(new Error('connect ECONNREFUSED'), { name: 'NetworkingError' });
    });
    const client = new SQSClient({ region: 'us-east-1' });
    const queue = createEventsQueue('https://sqs.us-east-1.amazonaws.com/1/events', () => client);
    const handles = Array.from({ length: 12 }, (_, i) => `h${i}`);
    const result = await queue.deleteMessages(handles);
    expect(result.deleted).toEqual(handles.slice(0, 10).filter((h) => h !== 'h3'));
    expect(result.failed).toEqual([
      { receiptHandle: 'h3', code: 'ReceiptHandleIsInvalid', message: 'bad handle' },
      { receiptHandle: 'h10', code: 'NetworkingError', message: 'connect ECONNREFUSED' },
      { receiptHandle: 'h11', code: 'NetworkingError', message: 'connect ECONNREFUSED' },
    ]);
    expect(sqs.commandCalls(DeleteMessageBatchCommand).map((c) => c.args[0].input.Entries?.length)).toEqual([10, 2]);
    sqs.restore();
  });

  it('sendEvent sends exactly one message', async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
    const client = new SQSClient({ region: 'us-east-1' });
    const queue = createEventsQueue('https://sqs.us-east-1.amazonaws.com/1/events', () => client);
    expect(await queue.sendEvent(event)).toEqual({ messageId: 'm-1' });
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(1);
    sqs.restore();
  });
});
