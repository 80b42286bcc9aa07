import { InvalidArgumentError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Target } from "../oci/target.ts";
import { DEFAULT_MAX_STATE_SIZE } from "./wire-format.ts";

/** Registry credentials, as ghoten's Config.CredentialFunc returns them. */
export interface Credential {
  username?: string;
  password?: string;
  /** A registry bearer token used as-is (also the GitHub token for the GHCR delete fallback). */
  accessToken?: string;
}

export type CredentialFunc = (host: string, signal?: AbortSignal) => Promise<Credential | undefined>;

export interface RetryConfig {
  /** Total attempts per registry request, first one included. Default 3. */
  maxAttempts?: number;
  /** First backoff in ms. Default 1000. */
  initialBackoff?: number;
  /** Backoff cap in ms. Default 30000. */
  maxBackoff?: number;
  /** Default 2. */
  backoffMultiplier?: number;
}

/**
 * The seed's Config, TypeScript-style (durations in milliseconds), plus what the service needs.
 * `repository` is `host[:port]/path` for a registry or `oci-layout:DIR` for a directory on disk.
 */
export interface BackendConfig {
  repository: string;
  /** Skip TLS certificate verification (still TLS). */
  insecure?: boolean;
  /** Talk plain HTTP to the registry (a separate setting from `insecure`). */
  plainHTTP?: boolean;
  /** PEM bundle added to the system roots. */
  caFile?: string;
  compression?: "none" | "gzip";
  /** Stale locks older than this (ms) are cleared when another holder locks. 0 = never. */
  lockTTL?: number;
  /** Registry requests per second; 0 = unlimited. */
  rateLimit?: number;
  rateBurst?: number;
  retry?: RetryConfig;
  /** Largest state accepted on write and read, in bytes (decompressed). Default 256 MiB. */
  maxStateSize?: number;
  /** Versions kept per workspace; 0 = versioning off. */
  maxVersions?: number;
  userAgent?: string;
  credentialFunc?: CredentialFunc;
  /** Explicit registry credentials (else credentialFunc, else Docker's config.json). */
  username?: string;
  password?: string;
  /** GitHub API base for the GHCR delete fallback (tests point it at a local server). */
  githubApiUrl?: string;
  logger?: Logger;
  /** Bytes of decoded state kept in memory to answer unchanged reads without a blob download. */
  stateCacheBytes?: number;
  /** Clock for lock leases and annotations (ms since the epoch). */
  now?: () => number;
  /** Use this target instead of building one from `repository` (embedding, tests). */
  target?: Target;
}

export interface ResolvedConfig {
  compression: "none" | "gzip";
  lockTTL: number;
  maxStateSize: number;
  maxVersions: number;
  stateCacheBytes: number;
  now: () => number;
}

function nonNegativeInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0 || !Number.isInteger(v)) {
    throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

/** Validates the core's own settings and applies the seed's defaults. */
export function resolveConfig(cfg: BackendConfig): ResolvedConfig {
  if (typeof cfg.repository !== "string" || cfg.repository.trim() === "") {
    if (!cfg.target)
      throw new InvalidArgumentError("repository is required (host[:port]/path or oci-layout:DIR)");
  }
  const compression = (cfg.compression ?? "none").trim().toLowerCase();
  if (compression !== "none" && compression !== "gzip") {
    throw new InvalidArgumentError(
      `compression must be "none" or "gzip", got ${JSON.stringify(cfg.compression)}`,
    );
  }
  const maxStateSize = nonNegativeInt("maxStateSize", cfg.maxStateSize, 0) || DEFAULT_MAX_STATE_SIZE;
  return {
    compression,
    lockTTL: nonNegativeInt("lockTTL", cfg.lockTTL, 0),
    maxStateSize,
    // ghoten: a negative max_versions means 0; we refuse it instead of guessing.
    maxVersions: nonNegativeInt("maxVersions", cfg.maxVersions, 0),
    stateCacheBytes: nonNegativeInt("stateCacheBytes", cfg.stateCacheBytes, 96 * 1024 * 1024),
    now: cfg.now ?? Date.now,
  };
}
