import { createHash, createHmac } from 'node:crypto';
import { DescribeClusterCommand, EKSClient } from '@aws-sdk/client-eks';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { EKS_TOKEN_PREFIX, EksTokenSource, presignEksToken } from '../../functions/adapters/kubernetes/eks-token.js';
import { loadKubeConfig } from '../../functions/adapters/kubernetes/kubeconfig.js';

const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);

function decode(token: string): URL {
  expect(token.startsWith(EKS_TOKEN_PREFIX)).toBe(true);
  const b64 = token.slice(EKS_TOKEN_PREFIX.length);
  expect(b64).toMatch(/^[A-Za-z0-9_-]+$/); // base64url, no padding
  return new URL(Buffer.from(b64, 'base64url').toString('utf8'));
}

/** Recomputes the SigV4 query signature independently of @smithy/signature-v4. */
function expectedSignature(url: URL, cluster: string, secret: string): string {
  const params = [...url.searchParams.entries()].filter(([k]) => k !== 'X-Amz-Signature');
  const enc = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = params
    .map(([k, v]) => [enc(k), enc(v)])
    .sort(([a], [b]) => (a! < b! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [
    'GET',
    '/',
    query,
    `host:${url.host}`,
    `x-k8s-aws-id:${cluster}`,
    '',
    'host;x-k8s-aws-id',
    createHash('sha256').update('').digest('hex'),
  ].join('\n');
  const date = url.searchParams.get('X-Amz-Date')!;
  const scope = `${date.slice(0, 8)}/us-east-1/sts/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', date, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = createHmac('sha256', `AWS4${secret}`).update(date.slice(0, 8)).digest();
  for (const part of ['us-east-1', 'sts', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  return createHmac('sha256', key).update(toSign).digest('hex');
}

describe('EKS token', () => {
  it('is k8s-aws-v1. + base64url of a presigned STS GetCallerIdentity URL signing x-k8s-aws-id', async () => {
    const token = await presignEksToken({
      clusterName: 'prod-ci',
      region: 'us-east-1',
      credentials: creds,
      signingDate: new Date(T0),
    });
    expect(token.endsWith('=')).toBe(false);
    const url = decode(token);
    expect(url.origin).toBe('https://sts.us-east-1.amazonaws.com');
    expect(url.pathname).toBe('/');
    const q = Object.fromEntries(url.searchParams);
    expect(q).toMatchObject({
      Action: 'GetCallerIdentity',
      Version: '2011-06-15',
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Credential': 'AKIDEXAMPLE/20261123/us-east-1/sts/aws4_request',
      'X-Amz-Date': '20261123T120000Z',
      'X-Amz-Expires': '60',
      'X-Amz-SignedHeaders': 'host;x-k8s-aws-id',
    });
    expect(q['X-Amz-Security-Token']).toBeUndefined();
    expect(q['X-Amz-Signature']).toBe(expectedSignature(url, 'prod-ci', creds.secretAccessKey));
    // The cluster name is signed, not sent in the URL.
    expect(url.search).not.toContain('prod-ci');
  });

  it('carries the session token of temporary credentials', async () => {
    const token = await presignEksToken({
      clusterName: 'c',
      region: 'eu-west-1',
      credentials: { ...creds, sessionToken: 'SESSION/TOKEN+=' },
      signingDate: new Date(T0),
    });
    const url = decode(token);
    expect(url.host).toBe('sts.eu-west-1.amazonaws.com');
    expect(url.searchParams.get('X-Amz-Security-Token')).toBe('SESSION/TOKEN+=');
  });

  it.each([
    ['us-east-1', 'sts.us-east-1.amazonaws.com'],
    ['cn-north-1', 'sts.cn-north-1.amazonaws.com.cn'],
    ['cn-northwest-1', 'sts.cn-northwest-1.amazonaws.com.cn'],
    ['us-gov-west-1', 'sts.us-gov-west-1.amazonaws.com'],
    ['us-iso-east-1', 'sts.us-iso-east-1.c2s.ic.gov'],
    ['us-isob-east-1', 'sts.us-isob-east-1.sc2s.sgov.gov'],
  ])("signs for the STS host of the region's partition (%s -> %s)", async (region, host) => {
    const token = await presignEksToken({ clusterName: 'c', region, credentials: creds, signingDate: new Date(T0) });
    const url = decode(token);
    expect(url.host).toBe(host);
    // The credential scope names the region, the signature covers the host it is sent to.
    expect(url.searchParams.get('X-Amz-Credential')).toContain(`/${region}/sts/aws4_request`);
    expect(url.searchParams.get('X-Amz-SignedHeaders')).toBe('host;x-k8s-aws-id');
  });

  it('is cached for 10 minutes, then re-signed (EKS accepts it for 15)', async () => {
    let now = T0;
    let calls = 0;
    const source = new EksTokenSource({
      clusterName: 'c',
      region: 'us-east-1',
      credentials: async () => {
        calls++;
        return creds;
      },
      now: () => now,
    });
    const first = await source.token();
    expect(source.expiresAt).toBe(T0 + 15 * 60_000);
    now = T0 + 9 * 60_000 + 59_000;
    expect(await source.token()).toBe(first);
    expect(calls).toBe(1);
    now = T0 + 10 * 60_000;
    const second = await source.token();
    expect(second).not.toBe(first);
    expect(decode(second).searchParams.get('X-Amz-Date')).toBe('20261123T121000Z');
    expect(calls).toBe(2);
  });

  it('refreshes before the signing credentials expire', async () => {
    let now = T0;
    const source = new EksTokenSource({
      clusterName: 'c',
      region: 'us-east-1',
      credentials: async () => ({ ...creds, sessionToken: 's', expiration: new Date(now + 5 * 60_000) }),
      now: () => now,
    });
    const first = await source.token();
    expect(source.expiresAt).toBe(T0 + 5 * 60_000);
    now = T0 + 4 * 60_000; // 1 minute before the session ends
    expect(await source.token()).not.toBe(first);
  });

  it('signs once for concurrent callers', async () => {
    let calls = 0;
    const source = new EksTokenSource({
      clusterName: 'c',
      region: 'us-east-1',
      credentials: async () => {
        calls++;
        return creds;
      },
      now: () => T0,
    });
    const tokens = await Promise.all([source.token(), source.token(), source.token()]);
    expect(new Set(tokens).size).toBe(1);
    expect(calls).toBe(1);
  });
});

describe('EKS kubeconfig', () => {
  const eks = mockClient(EKSClient);
  afterEach(() => eks.reset());

  it('takes endpoint and CA from eks:DescribeCluster and puts a current token on every request', async () => {
    eks.on(DescribeClusterCommand, { name: 'prod-ci' }).resolves({
      cluster: {
        endpoint: 'https://ABC.gr7.us-east-1.eks.amazonaws.com',
        certificateAuthority: { data: Buffer.from('CA').toString('base64') },
      },
    });
    let now = T0;
    const { kubeConfig } = await loadKubeConfig({ kind: 'eks', clusterName: 'prod-ci' }, 'ci-agents', {
      region: 'us-east-1',
      credentials: async () => creds,
      now: () => now,
    });
    expect(kubeConfig.getCurrentCluster()).toMatchObject({
      server: 'https://ABC.gr7.us-east-1.eks.amazonaws.com',
      skipTLSVerify: false,
    });
    const authorization = async () => {
      const opts: { headers?: Record<string, string> } = {};
      await kubeConfig.applyToHTTPSOptions(opts);
      return opts.headers!.Authorization!;
    };
    const a = await authorization();
    expect(a.startsWith(`Bearer ${EKS_TOKEN_PREFIX}`)).toBe(true);
    expect(await authorization()).toBe(a);
    now += 11 * 60_000;
    const b = await authorization();
    expect(b).not.toBe(a);
    expect(decode(b.slice('Bearer '.length)).searchParams.get('X-Amz-Date')).toBe('20261123T121100Z');
    expect(eks.commandCalls(DescribeClusterCommand)).toHaveLength(1);
  });

  it('skips DescribeCluster when endpoint and CA are configured', async () => {
    const { kubeConfig } = await loadKubeConfig(
      { kind: 'eks', clusterName: 'c', endpoint: 'https://x.eks.amazonaws.com', caData: 'Q0E=' },
      'ci-agents',
      { region: 'us-east-1', credentials: async () => creds },
    );
    expect(kubeConfig.getCurrentCluster()?.server).toBe('https://x.eks.amazonaws.com');
    expect(eks.commandCalls(DescribeClusterCommand)).toHaveLength(0);
  });
});
