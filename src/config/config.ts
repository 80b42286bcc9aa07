import type { LogLevel } from "../log.ts";
import type { ListenAddress } from "./values.ts";

/**
 * Everything the process is configured with, built once at start from flags and environment
 * variables (src/config/load.ts) and passed down. Durations are in milliseconds, sizes in bytes.
 */
export interface Config {
  listen: ListenAddress;
  /** `host[:port]/path` for a registry, `oci-layout:DIR` for a directory on disk. */
  repository: string;
  plainHTTP: boolean;
  /** Skip TLS certificate verification towards the registry. */
  insecure: boolean;
  caFile: string | undefined;
  compression: "none" | "gzip";
  /** A lock older than this may be taken over; 0 = locks never expire. */
  lockTTLMs: number;
  /** Versions kept per workspace; 0 = no history. */
  maxVersions: number;
  maxStateSize: number;
  /** Registry requests per second; 0 = unlimited. */
  rateLimit: number;
  /** Requests allowed at once above the rate; 0 = 1. */
  rateBurst: number;
  retry: { maxAttempts: number; initialBackoffMs: number; maxBackoffMs: number };
  /** Explicit registry credentials; without them Docker's config.json (and its helpers) is used. */
  registryUsername: string | undefined;
  /** Never logged. */
  registryPassword: string | undefined;
  /** Serve TLS with this certificate chain and key (PEM files). */
  tls: { certFile: string; keyFile: string } | undefined;
  /** API tokens file (`--tokens-file`); undefined: no API tokens. */
  tokensFile: string | undefined;
  /** One trusted OIDC issuer from `--oidc-issuer` and `--oidc-audience`. */
  oidc: { issuer: string; audience: string } | undefined;
  /** Trusted OIDC issuers from a file (`--oidc-config`); never together with `oidc`. */
  oidcConfigFile: string | undefined;
  watchPollIntervalMs: number;
  maxLockWaitMs: number;
  /** How long an http backend LOCK on a held lock waits in line before its 423; 0 = at once. */
  httpLockWaitMs: number;
  /** The policy file; undefined: every authenticated caller may do everything. */
  policyFile: string | undefined;
  /** Serve anonymous callers beyond loopback when no identity is configured. */
  allowAnonymous: boolean;
  /** Largest message read or written per RPC. */
  maxMessageBytes: number;
  /** How long a request body may stop arriving while the server waits for it. */
  bodyIdleTimeoutMs: number;
  shutdownGraceMs: number;
  logLevel: LogLevel;
  /** Origins besides the server's own whose pages may call it (normalized `scheme://host[:port]`). */
  allowedOrigins: string[];
  /** Host names answered for: the loopback names, the listen host and --allowed-hosts; undefined: any. */
  allowedHosts: string[] | undefined;
  /** Where audit records go: a file, or "-" for stderr; undefined: nowhere. */
  auditLog: string | undefined;
  /** Fraction of state reads that get an audit record, 0 to 1. */
  auditReads: number;
  /** OTEL_* variables are set (and OTEL_SDK_DISABLED is not true): start the OpenTelemetry SDK. */
  telemetry: boolean;
}

/** The configuration without credentials, fit for a log line. */
export function describeConfig(config: Config): Record<string, unknown> {
  const { registryPassword, registryUsername, ...rest } = config;
  return {
    ...rest,
    registryAuth:
      registryUsername !== undefined && registryPassword !== undefined
        ? "username/password"
        : "docker config",
  };
}
