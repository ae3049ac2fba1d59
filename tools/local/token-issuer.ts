/**
 * A local stand-in for a cluster's ServiceAccount token issuer: an OIDC discovery document and a
 * JWKS served over HTTP on 127.0.0.1 (the paths the Kubernetes API server serves,
 * /.well-known/openid-configuration and /openid/v1/jwks), and `mint`, which signs tokens shaped
 * like a projected ServiceAccount token (iss, sub, aud list, exp, iat, nbf, `kubernetes.io`
 * namespace, serviceaccount and pod), for the local stack and the tests.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

export interface MintOptions {
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly audience?: string | readonly string[];
  /** Lifetime in seconds (default 3600); negative for an already expired token. */
  readonly expiresInSeconds?: number;
  /** Overrides the issuer claim (default the issuer's own URL). */
  readonly issuer?: string;
  /** Signs with a key the JWKS does not publish (a forged token with the same kid). */
  readonly forged?: boolean;
}

export interface TokenIssuer {
  /** The issuer URL (`iss`), http://127.0.0.1:<port>. */
  readonly url: string;
  readonly jwksUrl: string;
  mint(options?: MintOptions): Promise<string>;
  close(): Promise<void>;
}

export async function startTokenIssuer(options: { port?: number } = {}): Promise<TokenIssuer> {
  const kid = randomUUID();
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const forger = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  let url = '';
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    if (path === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          issuer: url,
          jwks_uri: `${url}/openid/v1/jwks`,
          response_types_supported: ['id_token'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        }),
      );
    } else if (path === '/openid/v1/jwks') {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    jwksUrl: `${url}/openid/v1/jwks`,
    async mint(o = {}) {
      const namespace = o.namespace ?? 'ci-agents';
      const name = o.serviceAccount ?? 'ci-agent';
      const now = Math.floor(Date.now() / 1000);
      const lifetime = o.expiresInSeconds ?? 3600;
      const audience = o.audience ?? 'ci-cache';
      return new SignJWT({
        'kubernetes.io': {
          namespace,
          pod: { name: `agent-${randomUUID().slice(0, 8)}`, uid: randomUUID() },
          serviceaccount: { name, uid: randomUUID() },
        },
      })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer(o.issuer ?? url)
        .setSubject(`system:serviceaccount:${namespace}:${name}`)
        .setAudience(typeof audience === 'string' ? [audience] : [...audience])
        .setIssuedAt(lifetime < 0 ? now + lifetime - 600 : now)
        .setNotBefore(lifetime < 0 ? now + lifetime - 600 : now)
        .setExpirationTime(now + lifetime)
        .setJti(randomUUID())
        .sign(o.forged ? forger.privateKey : privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
