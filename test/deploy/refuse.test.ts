/**
 * `serverless package` (and so `deploy`, which packages first) refuses a configuration the
 * functions would refuse at cold start, with the functions' own message, before anything reaches
 * AWS; the region comes from the user's AWS configuration; the scaler can run in a VPC; the EKS
 * access entry can be turned off for aws-auth clusters.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScalerConfig } from '../../functions/shared/config.js';
import {
  at,
  effectiveTemplate,
  type Packaged,
  packageService,
  refusedPackage,
  resource,
  type Template,
} from './package.js';

/** The message the scaler itself throws at cold start for these variables. */
function coldStartMessage(env: Record<string, string>): string {
  try {
    loadScalerConfig({
      EVENTS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/events',
      LEDGER_TABLE: 'ledger',
      ...env,
    });
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the scaler to refuse this configuration');
}

// Each case runs osls (Serverless Framework) once or twice: about 10 s on a quiet machine, several
// times that on a loaded one.
describe('serverless package refuses what the functions would refuse, with the same message', {
  timeout: 240_000,
}, () => {
  const cases: [string, string, string[], string][] = [
    ['maxAgents=ten', 'ci', ['maxAgents=ten'], coldStartMessage({ EKS_CLUSTER_NAME: 'c', MAX_AGENTS: 'ten' })],
    [
      'both eksClusterName and kubeconfigParameter',
      'ci',
      ['kubeconfigParameter=/ci/kubeconfig'],
      coldStartMessage({ EKS_CLUSTER_NAME: 'c', KUBECONFIG_PARAMETER: '/ci/kubeconfig' }),
    ],
    ['neither eksClusterName nor kubeconfigParameter', 'dev', [], coldStartMessage({})],
    [
      'an SSM name without a leading /',
      'dev',
      ['kubeconfigParameter=ci/kubeconfig'],
      coldStartMessage({ KUBECONFIG_PARAMETER: 'ci/kubeconfig' }),
    ],
    [
      'an unknown queue in QUEUE_OVERRIDES',
      'ci',
      ['queueOverrides={"gpu":{"maxAgents":2}}'],
      coldStartMessage({ EKS_CLUSTER_NAME: 'c', QUEUE_OVERRIDES: '{"gpu":{"maxAgents":2}}' }),
    ],
  ];

  it.each(cases)('%s', async (_what, stage, params, message) => {
    const log = await refusedPackage(stage, { params });
    expect(log).toContain(message);
    expect(log).not.toContain('Service packaged');
  });

  it('a webhook secret parameter without a leading / is refused too', async () => {
    const log = await refusedPackage('ci', { params: ['githubSecretParameter=ci-github-secret'] });
    expect(log).toContain('GITHUB_WEBHOOK_SECRET_PARAMETER must be an SSM Parameter Store name');
    expect(log).toContain('got "ci-github-secret"');
  });

  it("a bad cache setting is refused with the cache function's own message", async () => {
    const log = await refusedPackage('ci', { params: ['cacheTokenIssuer=oidc.eks.example'] });
    expect(log).toContain('CACHE_TOKEN_ISSUER must be an http(s) URL');
    expect(log).toContain('got "oidc.eks.example"');
    expect(log).toContain('function cache');
  });

  it('half a VPC placement is refused', async () => {
    const log = await refusedPackage('ci', { params: ['vpcSubnetIds=subnet-0abc'] });
    expect(log).toContain('vpcSubnetIds and vpcSecurityGroupIds go together');
  });
});

describe('region: the one the AWS configuration names, never a silent default', () => {
  let home: string;
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), 'aws-home-'));
    mkdirSync(join(home, '.aws'));
    writeFileSync(join(home, '.aws', 'config'), '[profile eu]\nregion = eu-central-1\n');
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('no region anywhere stops the command and says how to set one', async () => {
    const log = await refusedPackage('ci', { env: { AWS_REGION: '' } });
    expect(log).toContain('No AWS region: pass --region, set AWS_REGION');
  });

  it("the profile's region, as the AWS CLI would use it; --region wins", async () => {
    const config = join(home, '.aws', 'config');
    // Half a VPC is refused after the region is known, so the log shows the region it chose.
    const viaProfile = await refusedPackage('ci', {
      params: ['vpcSubnetIds=subnet-0abc'],
      env: { AWS_REGION: '', AWS_PROFILE: 'eu', AWS_CONFIG_FILE: config },
    });
    expect(viaProfile).toContain('(eu-central-1)');
    const explicit = await refusedPackage('ci', {
      params: ['vpcSubnetIds=subnet-0abc'],
      args: ['--region', 'ap-south-1'],
      env: { AWS_REGION: 'eu-west-1' },
    });
    expect(explicit).toContain('(ap-south-1)');
  });
});

describe('private clusters and aws-auth clusters', () => {
  let vpc: Packaged;
  let t: Template;
  beforeAll(async () => {
    vpc = await packageService('ci', {
      params: ['vpcSubnetIds=subnet-0abc,subnet-0def', 'vpcSecurityGroupIds=sg-0123', 'eksAccessEntry=false'],
    });
    t = effectiveTemplate(vpc.template);
  }, 180_000);
  afterAll(() => vpc?.cleanup());

  it('runs the scaler (only) in the given subnets, with the managed policy for its network interfaces', () => {
    expect(resource(t, 'ScalerLambdaFunction').Properties.VpcConfig).toEqual({
      SubnetIds: ['subnet-0abc', 'subnet-0def'],
      SecurityGroupIds: ['sg-0123'],
    });
    expect(resource(t, 'WebhookLambdaFunction').Properties.VpcConfig).toBeUndefined();
    expect(JSON.stringify(resource(t, 'ScalerRole').Properties.ManagedPolicyArns)).toContain(
      'service-role/AWSLambdaVPCAccessExecutionRole',
    );
    expect(resource(t, 'WebhookRole').Properties.ManagedPolicyArns).toBeUndefined();
  });

  it('eksAccessEntry=false leaves the cluster mapping to the aws-auth ConfigMap', () => {
    expect(t.Resources.ScalerAccessEntry).toBeUndefined();
    // The scaler still reaches the cluster with its role.
    expect(at(resource(t, 'ScalerLambdaFunction').Properties, 'Environment.Variables.EKS_CLUSTER_NAME')).toBe(
      'ci-cluster',
    );
  });
});
