'use strict';
/**
 * osls plugin: refuses a deployment that cannot work, before AWS sees it.
 *
 * - The region: `--region`, else the one the user's AWS configuration names, resolved as the AWS
 *   CLI resolves it (AWS_REGION, AWS_DEFAULT_REGION, then the `region` of the AWS_PROFILE profile
 *   in ~/.aws/config), so `npx serverless deploy` and `aws ssm put-parameter` land in the same
 *   region. No region anywhere is an error, never a silent us-east-1.
 * - Before `package` (and so before `deploy`, which packages first): each function's resolved
 *   environment goes through the SAME validation the function runs at cold start
 *   (functions/shared/config.ts), on the parameters of the stage being deployed, and a bad one
 *   stops the command with the function's own message, e.g.
 *   `MAX_AGENTS must be an integer >= MIN_AGENTS and >= 1, got "ten"`.
 * - The scaler's optional VPC placement (params vpcSubnetIds / vpcSecurityGroupIds), for clusters
 *   whose API endpoint is private.
 */
const { execFileSync } = require('node:child_process');
const path = require('node:path');

/** Values CloudFormation fills in at deploy time, replaced by plausible ones for validation. */
function placeholder(name, value) {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const ref = value && typeof value === 'object' ? (value.Ref ?? value['Fn::GetAtt']?.[0]) : undefined;
  if (!ref) return JSON.stringify(value);
  return name.endsWith('_URL') ? `https://sqs.us-east-1.amazonaws.com/000000000000/${ref}` : String(ref);
}

function list(value) {
  return String(value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

class DeployChecks {
  constructor(serverless, options) {
    this.serverless = serverless;
    this.options = options;
    // Resolved here, before any plugin prints or uses the region; set as if --region was given.
    if (!options.region) {
      options.region = this.region();
      serverless.service.provider.region = options.region;
    }
    this.hooks = {
      'before:package:initialize': () => this.check(),
    };
  }

  region() {
    // The AWS CLI reads AWS_REGION, then AWS_DEFAULT_REGION, then the profile's `region` in
    // ~/.aws/config (AWS_CONFIG_FILE, AWS_PROFILE). For the profile, ask the AWS SDK's own
    // resolver; it is asynchronous, and plugin constructors are not, so it runs in a child.
    const fromEnv = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
    if (fromEnv) return fromEnv;
    const script =
      "new (require('@aws-sdk/client-ssm').SSMClient)({}).config.region().then((r) => process.stdout.write(r), () => {})";
    const region = execFileSync(process.execPath, ['-e', script], { cwd: __dirname, encoding: 'utf8' }).trim();
    if (region) return region;
    throw new this.serverless.classes.Error(
      'No AWS region: pass --region, set AWS_REGION, or set `region` in the profile of AWS_PROFILE ' +
        '(aws configure set region <region>). Deploy and the `aws ssm` commands then use the same region.',
    );
  }

  async check() {
    const service = this.serverless.service;
    const { tsImport } = require('tsx/esm/api');
    const config = await tsImport(path.join(__dirname, '../../functions/shared/config.ts'), __filename);
    const loaders = {
      webhook: config.loadWebhookConfig,
      scaler: config.loadScalerConfig,
      cache: config.loadCacheConfig,
    };
    for (const [name, load] of Object.entries(loaders)) {
      const fn = service.functions[name];
      if (!fn) continue;
      const env = {};
      for (const [k, v] of Object.entries({ ...service.provider.environment, ...fn.environment })) {
        env[k] = placeholder(k, v);
      }
      try {
        load(env);
      } catch (error) {
        if (error?.name !== 'ConfigError') throw error;
        throw new this.serverless.classes.Error(`${error.message} (function ${name}, stage ${service.provider.stage})`);
      }
    }
    this.placeScalerInVpc();
  }

  placeScalerInVpc() {
    const vpc = this.serverless.service.custom?.scalerVpc ?? {};
    const subnetIds = list(vpc.subnetIds);
    const securityGroupIds = list(vpc.securityGroupIds);
    if (subnetIds.length === 0 && securityGroupIds.length === 0) return;
    if (subnetIds.length === 0 || securityGroupIds.length === 0) {
      throw new this.serverless.classes.Error(
        'vpcSubnetIds and vpcSecurityGroupIds go together: set both (comma-separated ids) to run the scaler in a VPC, or neither',
      );
    }
    const bad = [
      ...subnetIds.filter((s) => !/^subnet-[0-9a-f]+$/.test(s)),
      ...securityGroupIds.filter((s) => !/^sg-[0-9a-f]+$/.test(s)),
    ];
    if (bad.length > 0) throw new this.serverless.classes.Error(`Not a subnet or security group id: ${bad.join(', ')}`);
    this.serverless.service.functions.scaler.vpc = { subnetIds, securityGroupIds };
  }
}

module.exports = DeployChecks;
