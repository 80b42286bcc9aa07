/**
 * The server's Authenticator (src/http/auth.ts) for API tokens and OIDC JWTs: the credential from
 * the Authorization header (credentials.ts), a JWT to the OIDC verifier, anything else to the
 * tokens file. No credential is "credentials required"; a credential that is not good is "the
 * credentials were not accepted", with the precise reason in the debug log only. An issuer whose
 * keys cannot be fetched is UnavailableError (503 / UNAVAILABLE): the caller may try again, and its
 * token is not called bad for the service's own trouble.
 */
import { UnauthenticatedError } from "../errors.ts";
import type { Authenticator, AuthRequest } from "../http/auth.ts";
import type { Logger } from "../log.ts";
import type { Principal } from "../rpc/principal.ts";
import { type Credential, readCredential } from "./credentials.ts";
import { createOidcVerifier, type OidcVerifier, type OidcVerifierOptions } from "./oidc.ts";
import { CredentialRefused } from "./refusal.ts";
import { openTokenSource, type TokenSource, type TokenSourceOptions } from "./token-source.ts";

export const CREDENTIALS_REQUIRED = "credentials required";
export const NOT_ACCEPTED = "the credentials were not accepted";

export interface AuthenticatorOptions {
  /** API tokens from a tokens file, reloaded when it changes. */
  tokens?: Omit<TokenSourceOptions, "logger"> | undefined;
  /** Trusted OIDC issuers. */
  oidc?: Omit<OidcVerifierOptions, "logger"> | undefined;
  logger: Logger;
}

export interface IdentityAuthenticator {
  authenticate: Authenticator;
  /** Reads the tokens file again (SIGHUP); true when a new set is in place, false when the old one was kept. */
  reload(trigger?: string): Promise<boolean>;
  /** Stops watching the tokens file and fetching keys. */
  close(): void;
  /** For the start-up log line: what is configured (names and counts, no secrets). */
  describe(): { tokensFile?: string; tokens?: number; oidcIssuers?: readonly string[] };
}

/**
 * Builds the authenticator; throws IdentityFileError when the tokens file or a JWKS file cannot be
 * used (the CLI exits 2 with that message).
 */
export async function createAuthenticator(opts: AuthenticatorOptions): Promise<IdentityAuthenticator> {
  const { logger } = opts;
  if (opts.tokens === undefined && opts.oidc === undefined) {
    throw new Error("createAuthenticator needs a tokens file or OIDC issuers (without either, use allowAll)");
  }
  let tokens: TokenSource | undefined;
  let oidc: OidcVerifier | undefined;
  try {
    if (opts.tokens) tokens = await openTokenSource({ ...opts.tokens, logger });
    if (opts.oidc) oidc = await createOidcVerifier({ ...opts.oidc, logger });
  } catch (err) {
    tokens?.close();
    throw err;
  }

  const identify = async (cred: Exclude<Credential, { kind: "none" }>): Promise<Principal> => {
    if (cred.kind === "jwt") {
      if (!oidc) throw new CredentialRefused("a JWT was presented but no OIDC issuer is configured");
      return oidc.verify(cred.value);
    }
    if (!tokens) throw new CredentialRefused("an API token was presented but no tokens file is configured");
    const principal = tokens.current.match(cred.value);
    if (!principal) throw new CredentialRefused("no entry of the tokens file has this token's hash");
    return principal;
  };

  const refused = (req: AuthRequest, reason: string, credential?: string) => {
    logger.debug("authentication refused", {
      reason,
      credential,
      surface: req.kind,
      method: req.method,
      path: req.path,
      remoteAddress: req.remoteAddress,
    });
  };

  const authenticate: Authenticator = async (req) => {
    let cred: Credential;
    try {
      cred = readCredential(req.headers, req.kind);
    } catch (err) {
      // What is wrong with the header's form is said to the client too; it holds no secret.
      refused(req, (err as Error).message);
      throw err;
    }
    if (cred.kind === "none") throw new UnauthenticatedError(CREDENTIALS_REQUIRED);
    try {
      return await identify(cred);
    } catch (err) {
      if (!(err instanceof CredentialRefused)) throw err;
      refused(req, err.message, cred.kind === "jwt" ? "jwt" : "api token");
      throw new UnauthenticatedError(NOT_ACCEPTED);
    }
  };

  return {
    authenticate,
    reload: (trigger) => tokens?.reload(trigger) ?? Promise.resolve(false),
    close() {
      tokens?.close();
      oidc?.close();
    },
    describe: () => ({
      ...(opts.tokens && tokens ? { tokensFile: opts.tokens.file, tokens: tokens.current.size } : {}),
      ...(oidc ? { oidcIssuers: oidc.issuers } : {}),
    }),
  };
}
