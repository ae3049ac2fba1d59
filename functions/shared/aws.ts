/**
 * AWS clients are created lazily, once per container, by the adapter that uses them (so a
 * function bundles only the SDK clients it calls). The SDK honours the standard endpoint
 * variables (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SSM, ...), so the
 * same code runs against the local emulators.
 */
const created: { destroy(): void }[] = [];
const resets: (() => void)[] = [];

/** A getter that creates the client on first use and forgets it on resetAwsClients(). */
export function lazyClient<T extends { destroy(): void }>(create: () => T): () => T {
  let client: T | undefined;
  resets.push(() => {
    client = undefined;
  });
  return () => {
    if (client === undefined) {
      client = create();
      created.push(client);
    }
    return client;
  };
}

/** For tests and the local stack: forget the cached clients after changing endpoints. */
export function resetAwsClients(): void {
  for (const c of created.splice(0)) c.destroy();
  for (const reset of resets) reset();
}
