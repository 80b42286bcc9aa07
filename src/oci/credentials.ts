/**
 * Registry credentials and how a target gets them: a caller-supplied function, a fixed
 * username/password, or Docker's config.json (with its credential helpers).
 */
import { InvalidArgumentError } from "../errors.ts";
import { type DockerConfigOptions, dockerConfigCredentials } from "./docker-config.ts";

export interface Credential {
  username?: string | undefined;
  password?: string | undefined;
  /**
   * A registry bearer token, sent as-is (no token service round trip); on ghcr.io also the GitHub
   * token of the GitHub Packages API, which deletes what the registry will not.
   */
  accessToken?: string | undefined;
  /** An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token service. */
  refreshToken?: string | undefined;
}

/** Looks up the credential for a registry host ("ghcr.io", "127.0.0.1:5000"); undefined = anonymous. */
export type CredentialFunc = (host: string, signal?: AbortSignal) => Promise<Credential | undefined>;

export type CredentialsOption =
  | CredentialFunc
  | { username: string; password: string }
  | { dockerConfig?: string | undefined };

export interface CredentialLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  debug?(msg: string, fields?: Record<string, unknown>): void;
}

const anonymous: CredentialFunc = async () => undefined;

/** True when the credential can authenticate at all. */
export function hasSecret(cred: Credential | undefined): cred is Credential {
  if (cred === undefined) return false;
  return Boolean(cred.accessToken || cred.refreshToken || (cred.username && cred.password !== undefined));
}

export function resolveCredentials(
  option: CredentialsOption | undefined,
  logger: CredentialLogger | undefined,
  dockerDefaults: Omit<DockerConfigOptions, "configPath" | "logger"> = {},
): CredentialFunc {
  if (option === undefined) return anonymous;
  if (typeof option === "function") return option;
  if ("username" in option) {
    if (typeof option.username !== "string" || option.username === "") {
      throw new InvalidArgumentError("credentials.username must be a non-empty string");
    }
    if (typeof option.password !== "string") {
      throw new InvalidArgumentError("credentials.password must be a string");
    }
    const fixed: Credential = { username: option.username, password: option.password };
    return async () => fixed;
  }
  return dockerConfigCredentials({ ...dockerDefaults, configPath: option.dockerConfig, logger });
}
