import type { AuthenticatorOptions } from "../auth/authenticator.ts";
import { issuerFromFlags, loadOidcConfig } from "../auth/oidc-config.ts";
import type { Logger } from "../log.ts";
import type { Config } from "./config.ts";

/**
 * The authenticator's settings from the Config (the OIDC issuers file read here), or undefined
 * when no identity is configured: then everyone is the anonymous principal, as before. Throws
 * IdentityFileError when the issuers file cannot be used.
 */
export async function identityOptions(
  config: Config,
  logger: Logger,
): Promise<AuthenticatorOptions | undefined> {
  const issuers =
    config.oidcConfigFile !== undefined
      ? await loadOidcConfig(config.oidcConfigFile)
      : config.oidc !== undefined
        ? [issuerFromFlags(config.oidc.issuer, config.oidc.audience)]
        : undefined;
  if (config.tokensFile === undefined && issuers === undefined) return undefined;
  return {
    tokens: config.tokensFile !== undefined ? { file: config.tokensFile } : undefined,
    oidc: issuers !== undefined ? { issuers } : undefined,
    logger,
  };
}
