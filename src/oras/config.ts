import { InvalidArgumentError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { CredentialFunc, CredentialsOption } from "../oci/credentials.ts";
import type { OpenTargetOptions } from "../oci/open-target.ts";
import type { Target } from "../oci/target.ts";
import { DEFAULT_MAX_STATE_SIZE } from "./wire-format.ts";

export type { Credential, CredentialFunc } from "../oci/credentials.ts";

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

/** The core's own settings, whatever stores the states. */
export interface CoreSettings {
  compression?: "none" | "gzip";
  /** Stale locks older than this (ms) are cleared when another holder locks. 0 = never. */
  lockTTL?: number;
  /** Largest state accepted on write and read, in bytes (decompressed). Default 256 MiB. */
  maxStateSize?: number;
  /** Versions kept per workspace; 0 = versioning off. */
  maxVersions?: number;
  logger?: Logger;
  /** Bytes of decoded state kept in memory to answer unchanged reads without a blob download. */
  stateCacheBytes?: number;
  /** Clock for lock leases and annotations (ms since the epoch). */
  now?: () => number;
}

/**
 * Where the states live, in the seed's terms (ghoten's Config, durations in milliseconds).
 * `repository` is `host[:port]/path` for a registry or `oci-layout:DIR` for a directory on disk.
 */
export interface RepositorySettings {
  repository: string;
  /** Skip TLS certificate verification (still TLS). */
  insecure?: boolean;
  /** Talk plain HTTP to the registry (a separate setting from `insecure`). */
  plainHTTP?: boolean;
  /** PEM bundle added to the system roots. */
  caFile?: string;
  /** Registry requests per second; 0 = unlimited. */
  rateLimit?: number;
  rateBurst?: number;
  retry?: RetryConfig;
  userAgent?: string;
  credentialFunc?: CredentialFunc;
  /** Explicit registry credentials (else credentialFunc, else Docker's config.json). */
  username?: string;
  password?: string;
  /** GitHub API base for the GHCR delete fallback (tests point it at a local server). */
  githubApiUrl?: string;
}

/** A storage target built by the caller (the service builds one from its Config; embedding, tests). */
export interface TargetSettings {
  target: Target;
}

/** What createBackend takes: the core's settings, and a repository to open or a ready target. */
export type BackendConfig = CoreSettings & (RepositorySettings | TargetSettings);

/** The seed's repository settings in the storage layer's terms, for openTarget. */
export function targetOptions(cfg: RepositorySettings, logger: Logger | undefined): OpenTargetOptions {
  // Default: Docker's config.json (auths, credsStore, credHelpers), as docker and oras do.
  const credentials: CredentialsOption =
    cfg.credentialFunc ??
    (cfg.username !== undefined || cfg.password !== undefined
      ? { username: cfg.username ?? "", password: cfg.password ?? "" }
      : { dockerConfig: undefined });
  const retry = cfg.retry ?? {};
  return {
    repository: cfg.repository,
    plainHTTP: cfg.plainHTTP ?? false,
    insecureSkipVerify: cfg.insecure ?? false,
    caFile: cfg.caFile || undefined,
    credentials,
    userAgent: cfg.userAgent || undefined,
    retry: {
      ...(retry.maxAttempts !== undefined ? { maxAttempts: retry.maxAttempts } : {}),
      ...(retry.initialBackoff !== undefined ? { initialBackoffMs: retry.initialBackoff } : {}),
      ...(retry.maxBackoff !== undefined ? { maxBackoffMs: retry.maxBackoff } : {}),
      ...(retry.backoffMultiplier !== undefined ? { multiplier: retry.backoffMultiplier } : {}),
    },
    rateLimit: cfg.rateLimit ?? 0,
    rateBurst: cfg.rateBurst ?? 0,
    githubApiUrl: cfg.githubApiUrl || undefined,
    logger,
  };
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
export function resolveConfig(cfg: CoreSettings): ResolvedConfig {
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
