/**
 * Builds a KubeConfig from the configured cluster access: a kubeconfig file (KUBECONFIG), a
 * kubeconfig kept in SSM (KUBECONFIG_PARAMETER, SecureString), or EKS with a token presigned from
 * the function's own IAM role (EKS_CLUSTER_NAME; endpoint and CA from configuration or
 * eks:DescribeCluster).
 */

import { DescribeClusterCommand, EKSClient } from '@aws-sdk/client-eks';
import { KubeConfig, type User } from '@kubernetes/client-node';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { ClusterAccess } from '../../shared/config.js';
import { getSecureParameter } from '../ssm/client.js';
import { EksTokenSource } from './eks-token.js';

/** The user entry our EKS authenticator recognises. */
export const EKS_USER = 'ci-autoscaler-eks-iam';

export interface KubeConfigDeps {
  /** For EKS: credentials to sign with (default chain otherwise). */
  readonly credentials?: AwsCredentialIdentityProvider;
  /** For EKS: clock of the token cache. */
  readonly now?: () => number;
  /** For EKS: region (default AWS_REGION / AWS_DEFAULT_REGION). */
  readonly region?: string;
  /** For EKS without endpoint/CA in configuration. */
  readonly eksClient?: Pick<EKSClient, 'send'>;
}

export interface LoadedKubeConfig {
  readonly kubeConfig: KubeConfig;
}

export async function loadKubeConfig(
  access: ClusterAccess,
  namespace: string,
  deps: KubeConfigDeps = {},
): Promise<LoadedKubeConfig> {
  const kc = new KubeConfig();
  switch (access.kind) {
    case 'kubeconfig-file':
      kc.loadFromFile(access.path);
      break;
    case 'kubeconfig-parameter': {
      kc.loadFromString(await getSecureParameter(access.name));
      break;
    }
    case 'eks': {
      const region = deps.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
      if (!region) throw new Error('EKS access needs AWS_REGION');
      let endpoint = access.endpoint;
      let caData = access.caData;
      if (!endpoint || !caData) {
        const eks = deps.eksClient ?? new EKSClient({ region, maxAttempts: 3 });
        const out = await eks.send(new DescribeClusterCommand({ name: access.clusterName }));
        endpoint ??= out.cluster?.endpoint;
        caData ??= out.cluster?.certificateAuthority?.data;
        if (!endpoint || !caData) throw new Error(`eks:DescribeCluster ${access.clusterName} returned no endpoint/CA`);
      }
      const tokens = new EksTokenSource({
        clusterName: access.clusterName,
        region,
        ...(deps.credentials ? { credentials: deps.credentials } : {}),
        ...(deps.now ? { now: deps.now } : {}),
      });
      kc.loadFromOptions({
        clusters: [{ name: access.clusterName, server: endpoint, caData, skipTLSVerify: false }],
        users: [{ name: EKS_USER }],
        contexts: [{ name: 'eks', cluster: access.clusterName, user: EKS_USER, namespace }],
        currentContext: 'eks',
      });
      // Called by the client before EVERY request: each one carries the current (cached or
      // freshly signed) token, never one fixed when the client was built.
      kc.addAuthenticator({
        isAuthProvider: (user: User) => user.name === EKS_USER,
        applyAuthentication: async (_user, opts) => {
          const headers = (opts.headers ?? {}) as Record<string, string>;
          headers.Authorization = `Bearer ${await tokens.token()}`;
          opts.headers = headers;
        },
      });
      return { kubeConfig: kc };
    }
  }
  return { kubeConfig: kc };
}
