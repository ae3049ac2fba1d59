/**
 * Verifies the agents' Kubernetes projected ServiceAccount tokens against the cluster's OIDC
 * issuer: signature by a key of the issuer's JWKS (from its discovery document, or a given JWKS
 * URL), `iss`, `aud`, `exp`/`nbf`, and the ServiceAccount claims. Keys are fetched on first use
 * and cached by jose (re-fetched when a token names an unknown `kid`, at most every 30 s).
 */
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import { type Scope, scopeFromClaims } from '../../core/cache/model.js';

export interface TokenVerifierOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUrl?: string;
  /** Tolerated clock skew in seconds (default 30). */
  readonly clockToleranceSeconds?: number;
  readonly fetch?: typeof fetch;
}

/** The token is not acceptable (401): missing, malformed, expired, wrong issuer or audience, forged. */
export class TokenRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenRejected';
  }
}

/** Kubernetes signs ServiceAccount tokens with RSA or ECDSA keys. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256'];

export type TokenVerifier = (token: string | undefined) => Promise<Scope>;

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const doFetch = options.fetch ?? fetch;
  let keys: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;

  async function discover(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (options.jwksUrl) return createRemoteJWKSet(new URL(options.jwksUrl));
    const url = `${options.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const response = await doFetch(url, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok) throw new Error(`OIDC discovery ${url} answered ${response.status}`);
    const document = (await response.json()) as { jwks_uri?: unknown; issuer?: unknown };
    if (typeof document.jwks_uri !== 'string') throw new Error(`OIDC discovery ${url} has no jwks_uri`);
    return createRemoteJWKSet(new URL(document.jwks_uri));
  }

  return async (token) => {
    if (token === undefined || token === '') throw new TokenRejected('no bearer token');
    keys ??= discover().catch((error: unknown) => {
      keys = undefined; // try the discovery again on the next request
      throw error;
    });
    const jwks = await keys;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ALGORITHMS,
        clockTolerance: options.clockToleranceSeconds ?? 30,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (error) {
      if (error instanceof errors.JOSEError && !isKeyFetchFailure(error)) {
        throw new TokenRejected(`${error.code}: ${error.message}`);
      }
      throw error; // the JWKS could not be fetched: not the agent's fault (503)
    }
    const scope = scopeFromClaims(payload);
    if (scope === undefined) throw new TokenRejected('not a Kubernetes ServiceAccount token');
    return scope;
  };
}

function isKeyFetchFailure(error: errors.JOSEError): boolean {
  return error instanceof errors.JWKSTimeout || error.code === 'ERR_JOSE_GENERIC';
}
