/** `Name: message` of an error, for logs and reports (never carries a secret: callers log ours). */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
