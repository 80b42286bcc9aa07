/**
 * Every setting: its flag, its environment variables, how its value is written, its default and
 * its help line. The loader and the --help text both come from this table.
 */
import {
  parseBool,
  parseByteSize,
  parseChoice,
  parseDuration,
  parseFraction,
  parseHostList,
  parseIssuerUrl,
  parseListen,
  parseMessageSize,
  parseNonNegativeInt,
  parseOriginList,
  parsePositiveDuration,
  parsePositiveInt,
  parseRate,
  parseRepository,
  parseSeconds,
  ValueError,
} from "./values.ts";

export const ENV_PREFIX = "OCI_TFSTATE_";
export const SEED_ENV_PREFIX = "TF_BACKEND_ORAS_";

export interface OptionSpec {
  /** The flag without dashes, e.g. "lock-ttl"; its variable is OCI_TFSTATE_LOCK_TTL. */
  flag: string;
  /** Boolean flags take no value on the command line (`--plain-http`, `--no-plain-http`). */
  type: "string" | "boolean";
  /** Placeholder in --help, e.g. "DURATION". */
  placeholder?: string;
  help: string;
  /** Shown in --help; also the value used when nothing is set (parsed like any other). */
  default?: string;
  parse: (text: string) => unknown;
  /** The seed's variable for the same setting, in the seed's own units. */
  seed?: { name: string; parse: (text: string) => unknown; note: string };
  /** Never echo the value in messages. */
  secret?: boolean;
}

export function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replaceAll("-", "_");
}

const asIs = (text: string) => text;
const nonEmpty = (text: string) => {
  if (text.trim() === "") throw new ValueError("must not be empty");
  return text;
};

export const OPTIONS: readonly OptionSpec[] = [
  {
    flag: "listen",
    type: "string",
    placeholder: "HOST:PORT",
    help: "Address to serve Connect, gRPC and gRPC-Web on (one port; HTTP/1.1 and h2c, or TLS).",
    default: "127.0.0.1:8080",
    parse: parseListen,
  },
  {
    flag: "repository",
    type: "string",
    placeholder: "REPO",
    help: "Where states live: host[:port]/path of an OCI registry, or oci-layout:DIR for a directory on disk.",
    default: "oci-layout:./data",
    parse: parseRepository,
    seed: { name: "TF_BACKEND_ORAS_REPOSITORY", parse: parseRepository, note: "same syntax" },
  },
  {
    flag: "plain-http",
    type: "boolean",
    help: "Talk plain HTTP to the registry (local registries only).",
    default: "false",
    parse: parseBool,
  },
  {
    flag: "insecure",
    type: "boolean",
    help: "Skip TLS certificate verification towards the registry.",
    default: "false",
    parse: parseBool,
  },
  {
    flag: "ca-file",
    type: "string",
    placeholder: "FILE",
    help: "PEM bundle of extra CA certificates to trust for the registry.",
    parse: nonEmpty,
  },
  {
    flag: "compression",
    type: "string",
    placeholder: "none|gzip",
    help: "Compression of new states in the registry (reads handle both).",
    default: "none",
    parse: parseChoice(["none", "gzip"] as const),
  },
  {
    flag: "lock-ttl",
    type: "string",
    placeholder: "DURATION",
    help: "Lease of a lock: an older lock may be taken over by another client. 0 = locks never expire.",
    default: "0",
    parse: parseDuration,
    seed: { name: "TF_BACKEND_ORAS_LOCK_TTL", parse: parseSeconds, note: "whole seconds" },
  },
  {
    flag: "max-versions",
    type: "string",
    placeholder: "N",
    help: "State versions kept per workspace (older ones are removed). 0 = no history.",
    default: "0",
    parse: parseNonNegativeInt,
  },
  {
    flag: "max-state-size",
    type: "string",
    placeholder: "SIZE",
    help: "Largest state accepted or returned, e.g. 256MiB. 0 = the default.",
    default: "256MiB",
    parse: parseByteSize,
    seed: { name: "TF_BACKEND_ORAS_MAX_STATE_SIZE", parse: parseNonNegativeInt, note: "bytes" },
  },
  {
    flag: "rate-limit",
    type: "string",
    placeholder: "N",
    help: "Registry requests per second. 0 = unlimited.",
    default: "0",
    parse: parseRate,
    seed: { name: "TF_BACKEND_ORAS_RATE_LIMIT", parse: parseNonNegativeInt, note: "requests per second" },
  },
  {
    flag: "rate-burst",
    type: "string",
    placeholder: "N",
    help: "Registry requests allowed at once above the rate. 0 = 1.",
    default: "0",
    parse: parseNonNegativeInt,
    seed: { name: "TF_BACKEND_ORAS_RATE_LIMIT_BURST", parse: parseNonNegativeInt, note: "requests" },
  },
  {
    flag: "retry-max-attempts",
    type: "string",
    placeholder: "N",
    help: "Attempts per registry request, the first one included.",
    default: "3",
    parse: parsePositiveInt,
    seed: {
      name: "TF_BACKEND_ORAS_RETRY_MAX",
      parse: (text) => parseNonNegativeInt(text) + 1,
      note: "retries, so attempts = value + 1",
    },
  },
  {
    flag: "retry-initial-backoff",
    type: "string",
    placeholder: "DURATION",
    help: "Wait before the first retry; it doubles on each retry.",
    default: "1s",
    parse: parseDuration,
    seed: { name: "TF_BACKEND_ORAS_RETRY_WAIT_MIN", parse: parseSeconds, note: "whole seconds" },
  },
  {
    flag: "retry-max-backoff",
    type: "string",
    placeholder: "DURATION",
    help: "Longest wait between retries.",
    default: "30s",
    parse: parseDuration,
    seed: { name: "TF_BACKEND_ORAS_RETRY_WAIT_MAX", parse: parseSeconds, note: "whole seconds" },
  },
  {
    flag: "registry-username",
    type: "string",
    placeholder: "USER",
    help: "Registry username. Without credentials, Docker's config.json and credential helpers are used.",
    parse: nonEmpty,
  },
  {
    flag: "registry-password",
    type: "string",
    placeholder: "PASSWORD",
    help: "Registry password or token. Prefer the variable or --registry-password-file to a flag.",
    parse: asIs,
    secret: true,
  },
  {
    flag: "registry-password-file",
    type: "string",
    placeholder: "FILE",
    help: "Read the registry password from this file (trailing newline removed).",
    parse: nonEmpty,
  },
  {
    flag: "tls-cert",
    type: "string",
    placeholder: "FILE",
    help: "Serve TLS (ALPN h2 and http/1.1) with this PEM certificate chain; needs --tls-key.",
    parse: nonEmpty,
  },
  {
    flag: "tls-key",
    type: "string",
    placeholder: "FILE",
    help: "PEM private key for --tls-cert.",
    parse: nonEmpty,
  },
  {
    flag: "tokens-file",
    type: "string",
    placeholder: "FILE",
    help: "API tokens (YAML or JSON): names and secrets' SHA-256, from `token create`. Reloaded on change and SIGHUP.",
    parse: nonEmpty,
  },
  {
    flag: "oidc-issuer",
    type: "string",
    placeholder: "URL",
    help: "Accept OIDC JWTs (GitHub Actions, GitLab CI, ...) from this issuer (keys by discovery). Needs --oidc-audience.",
    parse: parseIssuerUrl,
  },
  {
    flag: "oidc-audience",
    type: "string",
    placeholder: "AUD",
    help: "The audience (aud claim) a JWT of --oidc-issuer must be for, e.g. oci-tfstate.",
    parse: nonEmpty,
  },
  {
    flag: "oidc-config",
    type: "string",
    placeholder: "FILE",
    help: "Trusted OIDC issuers (YAML or JSON): several, or keys from a local JWKS file. Instead of --oidc-issuer.",
    parse: nonEmpty,
  },
  {
    flag: "watch-poll-interval",
    type: "string",
    placeholder: "DURATION",
    help: "How often a watched lock is read to find changes made outside the service.",
    default: "2s",
    parse: parsePositiveDuration,
  },
  {
    flag: "max-lock-wait",
    type: "string",
    placeholder: "DURATION",
    help: "Longest a Lock call may wait for a held lock to free.",
    default: "10m",
    parse: parsePositiveDuration,
  },
  {
    flag: "policy-file",
    type: "string",
    placeholder: "FILE",
    help:
      "Who may do what to which workspace (YAML or JSON: rules of principals, workspace globs and " +
      "permissions). Without it every authenticated caller may do everything.",
    parse: nonEmpty,
  },
  {
    flag: "allow-anonymous",
    type: "boolean",
    help:
      "Serve callers without credentials when listening beyond loopback with no identity configured " +
      "(refused by default: state holds secrets).",
    default: "false",
    parse: parseBool,
  },
  {
    flag: "http-lock-wait",
    type: "string",
    placeholder: "DURATION",
    help:
      "How long an http backend LOCK on a held lock waits in line for it before the 423; the client keeps " +
      "its place across its retries. 0 = answer 423 at once. At most 30s (proxies cut idle requests at 60s).",
    default: "5s",
    parse: (text) => {
      const ms = parseDuration(text);
      if (ms > 30_000) throw new ValueError("must be at most 30s, well under proxies' 60 s idle timeout");
      return ms;
    },
  },
  {
    flag: "max-message-size",
    type: "string",
    placeholder: "SIZE",
    help: "Largest RPC message read or written; larger states go through DownloadState/UploadState.",
    default: "4MiB",
    parse: parseMessageSize,
  },
  {
    flag: "body-idle-timeout",
    type: "string",
    placeholder: "DURATION",
    help: "How long a request body may stop arriving before the request is ended (408, or DEADLINE_EXCEEDED for RPCs).",
    default: "30s",
    parse: parsePositiveDuration,
  },
  {
    flag: "shutdown-grace",
    type: "string",
    placeholder: "DURATION",
    help: "On SIGTERM/SIGINT, how long running calls may finish before they are cut off.",
    default: "10s",
    parse: parseDuration,
  },
  {
    flag: "allowed-origins",
    type: "string",
    placeholder: "LIST",
    help:
      "Origins (scheme://host[:port], comma-separated) whose web pages may call the service besides its own, " +
      "with CORS on the API. A request with another Origin header is refused (403).",
    parse: parseOriginList,
  },
  {
    flag: "allowed-hosts",
    type: "string",
    placeholder: "LIST",
    help:
      "Host names (comma-separated, no ports; *.domain for subdomains) answered besides the loopback names and " +
      "the --listen host; other Host headers get 421 (a DNS rebinding defence). * = any. Unset: those alone, " +
      "or any host when listening on every interface.",
    parse: parseHostList,
  },
  {
    flag: "audit-log",
    type: "string",
    placeholder: "FILE|-",
    help: "Append one JSON audit record per state read and state change to FILE (- = stderr); reopened on SIGHUP.",
    parse: nonEmpty,
  },
  {
    flag: "audit-reads",
    type: "string",
    placeholder: "on|off|FRACTION",
    help: "Which state reads get an audit record: on (all), off (none), or a fraction such as 0.1.",
    default: "on",
    parse: parseFraction,
  },
  {
    flag: "log-level",
    type: "string",
    placeholder: "LEVEL",
    help: "Least severe log level written: debug, info, warn or error.",
    default: "info",
    parse: parseChoice(["debug", "info", "warn", "error"] as const),
  },
];
