import { createContextKey } from "@connectrpc/connect";

/**
 * Who makes a request, as the server's authenticator established it. With no identity configured
 * everyone is the anonymous principal.
 */
export interface Principal {
  /** How the caller was identified: nobody, an API token from the tokens file, or a verified OIDC JWT. */
  readonly method: "anonymous" | "token" | "oidc";
  /** Fit for logs and audit: the token's name, or `oidc:<issuer host>:<sub>`; never a secret. */
  readonly name: string;
  /** method "token": the token's name from the tokens file. */
  readonly token?: string;
  /** method "oidc": the verified token's issuer (its `iss`, exactly as configured). */
  readonly issuer?: string;
  /** method "oidc": the verified token's `sub`. */
  readonly subject?: string;
  /** method "oidc": every claim of the verified token. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

export const ANONYMOUS: Principal = Object.freeze({ method: "anonymous", name: "anonymous" });

/** The caller of an RPC, set by the server's request gate before the handler runs. */
export const principalKey = createContextKey<Principal>(ANONYMOUS, { description: "authenticated caller" });
