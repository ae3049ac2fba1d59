/**
 * EKS bearer tokens, as `aws eks get-token` / aws-iam-authenticator make them:
 * `k8s-aws-v1.` + base64url (no padding) of a presigned STS GetCallerIdentity URL whose signature
 * covers the `x-k8s-aws-id: <cluster name>` header. The API server's authenticator calls that URL;
 * STS answers with the caller's IAM identity, which an EKS access entry maps to Kubernetes RBAC.
 *
 * EKS accepts a token for 15 minutes after it was signed (X-Amz-Expires is fixed at 60 by
 * convention and not what bounds it). We sign once and reuse the token for 10 minutes (or until
 * 1 minute before the signing credentials expire, if sooner), so a Lambda invocation signs at
 * most a handful of times per hour and never sends a token about to expire.
 */

import { Sha256 } from '@aws-crypto/sha256-js';
import { partition } from '@aws-sdk/core/client';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

export const EKS_TOKEN_PREFIX = 'k8s-aws-v1.';
export const EKS_CLUSTER_ID_HEADER = 'x-k8s-aws-id';
/** How long EKS accepts a token. */
export const EKS_TOKEN_LIFETIME_MS = 15 * 60_000;
/** When we sign a new one. */
export const EKS_TOKEN_REFRESH_MS = 10 * 60_000;

export interface EksTokenOptions {
  readonly clusterName: string;
  readonly region: string;
  /** Defaults to the standard Node chain (the Lambda's role in AWS). */
  readonly credentials?: AwsCredentialIdentityProvider;
  /** Clock (epoch ms), for tests. */
  readonly now?: () => number;
}

function encodeQuery(query: Record<string, string | string[] | null>): string {
  return Object.keys(query)
    .sort()
    .map((k) => {
      const v = query[k];
      const value = Array.isArray(v) ? v.join(',') : (v ?? '');
      return `${encodeURIComponent(k)}=${encodeURIComponent(value)}`;
    })
    .join('&');
}

/**
 * The regional STS host of `region` in its partition, from the AWS SDK's own partition data
 * (`@aws-sdk/core` partitions.json): `sts.<region>.amazonaws.com` in aws and aws-us-gov,
 * `sts.<region>.amazonaws.com.cn` in aws-cn, `c2s.ic.gov` / `sc2s.sgov.gov` / ... in the iso
 * partitions. A region the SDK does not know falls in `aws`, as the SDK itself resolves it.
 */
export function stsHost(region: string): string {
  return `sts.${region}.${partition(region).dnsSuffix}`;
}

/** One token, signed at `signingDate` with the given credentials. */
export async function presignEksToken(opts: {
  clusterName: string;
  region: string;
  credentials: AwsCredentialIdentity;
  signingDate: Date;
}): Promise<string> {
  const hostname = stsHost(opts.region);
  const signer = new SignatureV4({
    credentials: opts.credentials,
    region: opts.region,
    service: 'sts',
    sha256: Sha256,
    uriEscapePath: true,
  });
  const request = new HttpRequest({
    method: 'GET',
    protocol: 'https:',
    hostname,
    path: '/',
    query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
    headers: { host: hostname, [EKS_CLUSTER_ID_HEADER]: opts.clusterName },
  });
  const signed = await signer.presign(request, { expiresIn: 60, signingDate: opts.signingDate });
  const url = `https://${hostname}/?${encodeQuery(signed.query as Record<string, string>)}`;
  return EKS_TOKEN_PREFIX + Buffer.from(url, 'utf8').toString('base64url');
}

/** Caches a token and signs a fresh one shortly before it expires. */
export class EksTokenSource {
  private cached?: { token: string; refreshAt: number; expiresAt: number };
  private pending: Promise<string> | undefined;
  private readonly credentials: AwsCredentialIdentityProvider;
  private readonly now: () => number;

  constructor(private readonly opts: EksTokenOptions) {
    this.credentials = opts.credentials ?? defaultProvider();
    this.now = opts.now ?? Date.now;
  }

  /** Epoch ms until which the current token is accepted by EKS (undefined before the first). */
  get expiresAt(): number | undefined {
    return this.cached?.expiresAt;
  }

  async token(): Promise<string> {
    const t = this.now();
    if (this.cached && t < this.cached.refreshAt) return this.cached.token;
    this.pending ??= this.sign().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async sign(): Promise<string> {
    const credentials = await this.credentials();
    const signedAt = this.now();
    const token = await presignEksToken({
      clusterName: this.opts.clusterName,
      region: this.opts.region,
      credentials,
      signingDate: new Date(signedAt),
    });
    let refreshAt = signedAt + EKS_TOKEN_REFRESH_MS;
    let expiresAt = signedAt + EKS_TOKEN_LIFETIME_MS;
    const credsExpire = credentials.expiration?.getTime();
    if (credsExpire !== undefined) {
      // A presigned URL dies with the session that signed it.
      refreshAt = Math.min(refreshAt, credsExpire - 60_000);
      expiresAt = Math.min(expiresAt, credsExpire);
    }
    this.cached = { token, refreshAt, expiresAt };
    return token;
  }
}
