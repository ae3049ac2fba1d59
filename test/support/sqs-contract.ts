/** What real SQS accepts in a message, for tests that fake or check it (no emulator here). */

/** 256 KiB: a queue's MaximumMessageSize as SQS defaulted it for years; every event must fit it. */
export const SQS_LEGACY_MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * Whether real SQS accepts a message body's characters: "#x9 | #xA | #xD | #x20 to #xD7FF |
 * #xE000 to #xFFFD | #x10000 to #x10FFFF" (SendMessage, MessageBody). fauxqs refuses the last
 * range too; the product's bodies are ASCII, so both accept them.
 */
export function sqsAcceptsBody(body: string): boolean {
  for (const ch of body) {
    const c = ch.codePointAt(0) ?? 0;
    const ok =
      c === 0x9 ||
      c === 0xa ||
      c === 0xd ||
      (c >= 0x20 && c <= 0xd7ff) ||
      (c >= 0xe000 && c <= 0xfffd) ||
      (c >= 0x10000 && c <= 0x10ffff);
    if (!ok) return false;
  }
  return true;
}
