/**
 * Parameter Store: webhook secrets and the scaler's kubeconfig, read once per container.
 *
 * The SSM client is loaded on first use (dynamic import) and left out of the bundles: a function
 * whose secrets are plain values never loads it, and on Lambda it comes from the runtime's own
 * AWS SDK v3 (serverless.yml: esbuild `exclude`), which keeps the webhook bundle small.
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { lazyClient } from '../../shared/aws.js';

type SsmModule = typeof import('@aws-sdk/client-ssm');
let sdk: Promise<SsmModule> | undefined;
let client: (() => SSMClient) | undefined;

async function ssm(): Promise<{ module: SsmModule; client: SSMClient }> {
  sdk ??= import('@aws-sdk/client-ssm');
  const module = await sdk;
  client ??= lazyClient(() => new module.SSMClient({ maxAttempts: 3 }));
  return { module, client: client() };
}

/** The decrypted value of a (SecureString) parameter; throws when it is missing or empty. */
export async function getSecureParameter(name: string): Promise<string> {
  const { module, client } = await ssm();
  const out = await client.send(new module.GetParameterCommand({ Name: name, WithDecryption: true }));
  const value = out.Parameter?.Value;
  if (value === undefined || value === '') throw new Error(`SSM parameter ${name} has no value`);
  return value;
}
