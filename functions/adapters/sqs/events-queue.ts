/**
 * The events queue: the webhook sends normalised job events, the scaler receives and deletes
 * them. Requests go to the SQS client's endpoint (AWS_ENDPOINT_URL_SQS or the regional one),
 * never to the host inside the queue URL (see ./client.ts).
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  eventMessageBody,
  InvalidJobEventError,
  invalidJobEvent,
  JobEventSchema,
  jobKey,
  type QueuedJobEvent,
  withBoundedOptionalFields,
} from '../../core/job-event.js';
import type { EventSource, ReceivedEvent } from '../../scaler/ports.js';
import { chunks } from '../../shared/concurrency.js';
import { sqsClient } from './client.js';

export interface DeleteResult {
  readonly deleted: readonly string[];
  readonly failed: readonly { readonly receiptHandle: string; readonly code: string; readonly message: string }[];
}

export interface ReceiveOptions {
  /** 1..10 (default 10). */
  readonly max?: number;
  /** Long-poll wait, 0..20 s (default 0). */
  readonly waitSeconds?: number;
  readonly visibilityTimeoutSeconds?: number;
}

export interface EventsQueue {
  readonly url: string;
  sendEvent(event: QueuedJobEvent): Promise<{ messageId: string }>;
  receiveEvents(options?: ReceiveOptions): Promise<ReceivedEvent[]>;
  deleteMessages(receiptHandles: readonly string[]): Promise<DeleteResult>;
  /** Hides a received message for `seconds` (0..43200) before it is delivered again. */
  changeVisibility(receiptHandle: string, seconds: number): Promise<void>;
}

export function isFifoQueueUrl(url: string): boolean {
  return url.endsWith('.fifo');
}

/**
 * The SendMessage input for an event (exported for tests and the benchmark). Refuses, with an
 * InvalidJobEventError, an event the scaler could not apply (invalidJobEvent): no sender can
 * record one. The body is ASCII JSON (eventMessageBody), within EVENT_BOUNDS.messageBytes.
 */
export function sendMessageInput(queueUrl: string, event: QueuedJobEvent) {
  const invalid = invalidJobEvent(event);
  if (invalid !== undefined) throw new InvalidJobEventError(invalid);
  return {
    QueueUrl: queueUrl,
    MessageBody: eventMessageBody(event),
    MessageAttributes: { eventId: { DataType: 'String', StringValue: event.id } },
    ...(isFifoQueueUrl(queueUrl) ? { MessageDeduplicationId: event.id, MessageGroupId: jobKey(event) } : {}),
  };
}

export function parseEventBody(body: string | undefined): { event: QueuedJobEvent } | { error: string } {
  if (body === undefined) return { error: 'message has no body' };
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { error: 'message body is not JSON' };
  }
  // Optional fields of older messages are cut to today's bounds rather than refused.
  const result = JobEventSchema.safeParse(withBoundedOptionalFields(json));
  if (result.success) return { event: result.data };
  const [issue] = result.error.issues;
  return { error: `message body is not a JobEvent: ${issue?.path.join('.') || '(root)'}: ${issue?.message}` };
}

type Client = () => SQSClient;

/** Records one event: one message, body = the JSON event, attribute eventId (FIFO: dedup + group ids). */
export async function sendEvent(
  queueUrl: string,
  event: QueuedJobEvent,
  client: Client = sqsClient,
): Promise<{ messageId: string }> {
  const out = await client().send(new SendMessageCommand(sendMessageInput(queueUrl, event)));
  return { messageId: out.MessageId ?? '' };
}

/**
 * Receives up to `max` (1..10) messages, long-polling up to `waitSeconds` (0..20). Every message
 * is returned: parsed (`event`) or not (`error`, left in the queue so it ends in the DLQ).
 */
export async function receiveEvents(
  queueUrl: string,
  { max = 10, waitSeconds = 0, visibilityTimeoutSeconds }: ReceiveOptions = {},
  client: Client = sqsClient,
): Promise<ReceivedEvent[]> {
  const out = await client().send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: Math.max(1, Math.min(10, max)),
      WaitTimeSeconds: Math.max(0, Math.min(20, waitSeconds)),
      ...(visibilityTimeoutSeconds === undefined ? {} : { VisibilityTimeout: visibilityTimeoutSeconds }),
      // Only what the scaler reads: the body carries the event (its id included), so the
      // eventId message attribute is not asked for (less to transfer, hash and parse per message).
      // SentTimestamp: how long the events wait in the queue (the scaler's lag).
      MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
    }),
  );
  return (out.Messages ?? []).map((m): ReceivedEvent => {
    const base = {
      receiptHandle: m.ReceiptHandle ?? '',
      messageId: m.MessageId ?? '',
      receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1') || 1,
      ...(Number(m.Attributes?.SentTimestamp) > 0 ? { sentAt: Number(m.Attributes?.SentTimestamp) } : {}),
    };
    const parsed = parseEventBody(m.Body);
    return 'event' in parsed ? { ...base, event: parsed.event } : { ...base, error: parsed.error };
  });
}

/**
 * Deletes messages with DeleteMessageBatch (chunks of 10). Reports which handles were deleted
 * and which failed (per-entry failures, or every handle of a batch whose request failed).
 */
export async function deleteMessages(
  queueUrl: string,
  receiptHandles: readonly string[],
  client: Client = sqsClient,
): Promise<DeleteResult> {
  const deleted: string[] = [];
  const failed: { receiptHandle: string; code: string; message: string }[] = [];
  for (const chunk of chunks(receiptHandles, 10)) {
    try {
      const out = await client().send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((ReceiptHandle, n) => ({ Id: String(n), ReceiptHandle })),
        }),
      );
      const succeeded = new Set((out.Successful ?? []).map((ok) => ok.Id));
      const failures = new Map((out.Failed ?? []).map((bad) => [bad.Id, bad]));
      chunk.forEach((receiptHandle, n) => {
        if (succeeded.has(String(n))) deleted.push(receiptHandle);
        const bad = failures.get(String(n));
        if (bad) failed.push({ receiptHandle, code: bad.Code ?? 'Unknown', message: bad.Message ?? '' });
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const code = error instanceof Error ? error.name : 'Error';
      for (const receiptHandle of chunk) failed.push({ receiptHandle, code, message });
    }
  }
  return { deleted, failed };
}

/** Sets when a received message becomes visible again (ChangeMessageVisibility). */
export async function changeVisibility(
  queueUrl: string,
  receiptHandle: string,
  seconds: number,
  client: Client = sqsClient,
): Promise<void> {
  await client().send(
    new ChangeMessageVisibilityCommand({
      QueueUrl: queueUrl,
      ReceiptHandle: receiptHandle,
      VisibilityTimeout: Math.max(0, Math.min(43_200, Math.ceil(seconds))),
    }),
  );
}

/** The operations bound to one queue URL (the scaler's view; the webhook uses sendEvent alone). */
export function createEventsQueue(url: string, client: Client = sqsClient): EventsQueue {
  return {
    url,
    sendEvent: (event) => sendEvent(url, event, client),
    receiveEvents: (options) => receiveEvents(url, options, client),
    deleteMessages: (handles) => deleteMessages(url, handles, client),
    changeVisibility: (handle, seconds) => changeVisibility(url, handle, seconds, client),
  };
}

/** The scaler's EventSource on an events queue. */
export function eventSource(queue: EventsQueue): EventSource {
  return {
    receive: (options) => queue.receiveEvents(options),
    delete: async (handles) => (await queue.deleteMessages(handles)).failed.map((f) => f.receiptHandle),
    defer: (handle, seconds) => queue.changeVisibility(handle, seconds),
  };
}
