/**
 * Builds the Config from command-line flags and environment variables. Precedence, highest first:
 * the flag, its OCI_TFSTATE_* variable, the seed's TF_BACKEND_ORAS_* variable, the default. Any bad
 * setting is a ConfigError whose message is one line naming the flag or variable.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { allowedHostsFor } from "../http/browser-guards.ts";
import type { LogLevel } from "../log.ts";
import { DEFAULT_MAX_STATE_SIZE } from "../oras/wire-format.ts";
import type { Config } from "./config.ts";
import { ENV_PREFIX, envName, OPTIONS, type OptionSpec } from "./options.ts";
import { type ListenAddress, ValueError } from "./values.ts";

export class ConfigError extends Error {}

export type LoadResult =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "config"; config: Config; warnings: string[] };

export interface LoadOptions {
  /** Reads a file named by a setting (the password file); default: readFileSync as UTF-8. */
  readFile?: (path: string) => string;
}

type Source = { label: string; text: string; parse: (text: string) => unknown };

export function loadConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  opts: LoadOptions = {},
): LoadResult {
  const flags = parseFlags(argv);
  if (flags.help === true) return { kind: "help" };
  if (flags.version === true) return { kind: "version" };

  const warnings: string[] = [];
  const known = new Set(OPTIONS.map((o) => envName(o.flag)));
  for (const name of Object.keys(env)) {
    if (name.startsWith(ENV_PREFIX) && !known.has(name))
      warnings.push(`unknown environment variable ${name}`);
  }

  const value = <T>(flag: string): T | undefined => {
    const spec = OPTIONS.find((o) => o.flag === flag);
    if (!spec) throw new Error(`no option ${flag}`);
    const source = pick(spec, flags, env);
    if (!source) return undefined;
    try {
      return source.parse(source.text) as T;
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      const shown = spec.secret ? "" : ` ${JSON.stringify(source.text)}`;
      throw new ConfigError(`invalid ${source.label}${shown}: ${err.message}`);
    }
  };
  const required = <T>(flag: string): T => {
    const v = value<T>(flag);
    if (v === undefined) throw new Error(`option ${flag} has no default`);
    return v;
  };

  const readFile = opts.readFile ?? ((path: string) => readFileSync(path, "utf8"));
  let password = value<string>("registry-password");
  const passwordFile = value<string>("registry-password-file");
  if (passwordFile !== undefined) {
    if (password !== undefined) {
      throw new ConfigError("give --registry-password or --registry-password-file, not both");
    }
    try {
      password = readFile(passwordFile).replace(/\r?\n$/, "");
    } catch (err) {
      throw new ConfigError(
        `cannot read --registry-password-file ${JSON.stringify(passwordFile)}: ${reason(err)}`,
      );
    }
  }
  const username = value<string>("registry-username");
  if (password !== undefined && username === undefined) {
    throw new ConfigError("a registry password is set but --registry-username is not");
  }
  if (username !== undefined && password === undefined) {
    throw new ConfigError("--registry-username is set but no registry password is");
  }

  const certFile = value<string>("tls-cert");
  const keyFile = value<string>("tls-key");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(
      certFile === undefined ? "--tls-key needs --tls-cert" : "--tls-cert needs --tls-key",
    );
  }

  const oidcIssuer = value<string>("oidc-issuer");
  const oidcAudience = value<string>("oidc-audience");
  const oidcConfigFile = value<string>("oidc-config");
  if ((oidcIssuer === undefined) !== (oidcAudience === undefined)) {
    throw new ConfigError(
      oidcIssuer === undefined
        ? "--oidc-audience needs --oidc-issuer"
        : "--oidc-issuer needs --oidc-audience (the aud its tokens must carry, e.g. oci-tfstate)",
    );
  }
  if (oidcIssuer !== undefined && oidcConfigFile !== undefined) {
    throw new ConfigError("give --oidc-issuer or --oidc-config, not both (list every issuer in the file)");
  }

  const retry = {
    maxAttempts: required<number>("retry-max-attempts"),
    initialBackoffMs: required<number>("retry-initial-backoff"),
    maxBackoffMs: required<number>("retry-max-backoff"),
  };
  if (retry.maxBackoffMs < retry.initialBackoffMs) {
    throw new ConfigError("--retry-max-backoff must not be shorter than --retry-initial-backoff");
  }

  const maxStateSize = required<number>("max-state-size");

  const listen = required<ListenAddress>("listen");
  const config: Config = {
    listen,
    repository: required<string>("repository"),
    plainHTTP: required<boolean>("plain-http"),
    insecure: required<boolean>("insecure"),
    caFile: value<string>("ca-file"),
    compression: required<"none" | "gzip">("compression"),
    lockTTLMs: required<number>("lock-ttl"),
    maxVersions: required<number>("max-versions"),
    maxStateSize: maxStateSize === 0 ? DEFAULT_MAX_STATE_SIZE : maxStateSize,
    rateLimit: required<number>("rate-limit"),
    rateBurst: required<number>("rate-burst"),
    retry,
    registryUsername: username,
    registryPassword: password,
    tls: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
    tokensFile: value<string>("tokens-file"),
    oidc:
      oidcIssuer !== undefined && oidcAudience !== undefined
        ? { issuer: oidcIssuer, audience: oidcAudience }
        : undefined,
    oidcConfigFile,
    watchPollIntervalMs: required<number>("watch-poll-interval"),
    maxLockWaitMs: required<number>("max-lock-wait"),
    httpLockWaitMs: required<number>("http-lock-wait"),
    policyFile: value<string>("policy-file"),
    allowAnonymous: required<boolean>("allow-anonymous"),
    maxMessageBytes: required<number>("max-message-size"),
    bodyIdleTimeoutMs: required<number>("body-idle-timeout"),
    shutdownGraceMs: required<number>("shutdown-grace"),
    logLevel: required<LogLevel>("log-level"),
    allowedOrigins: value<string[]>("allowed-origins") ?? [],
    allowedHosts: allowedHostsFor(listen.host, value<string[]>("allowed-hosts")),
    auditLog: value<string>("audit-log"),
    auditReads: required<number>("audit-reads"),
    telemetry: telemetryWanted(env),
  };
  return { kind: "config", config, warnings };
}

/** Where a setting's text comes from, highest precedence first; undefined when nothing sets it. */
function pick(
  spec: OptionSpec,
  flags: Record<string, string | boolean | undefined>,
  env: Readonly<Record<string, string | undefined>>,
): Source | undefined {
  const flag = flags[spec.flag];
  if (flag !== undefined) return { label: `--${spec.flag}`, text: String(flag), parse: spec.parse };
  const name = envName(spec.flag);
  const fromEnv = env[name];
  if (fromEnv !== undefined && fromEnv !== "") return { label: name, text: fromEnv, parse: spec.parse };
  const seed = spec.seed ? env[spec.seed.name] : undefined;
  if (spec.seed && seed !== undefined && seed !== "") {
    return { label: spec.seed.name, text: seed, parse: spec.seed.parse };
  }
  if (spec.default !== undefined)
    return { label: `--${spec.flag} default`, text: spec.default, parse: spec.parse };
  return undefined;
}

function parseFlags(argv: readonly string[]): Record<string, string | boolean | undefined> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  };
  for (const o of OPTIONS) options[o.flag] = { type: o.type };
  try {
    const { values } = parseArgs({
      args: [...argv],
      options,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    });
    return values;
  } catch (err) {
    throw new ConfigError(flagError(err));
  }
}

/** parseArgs' messages, shortened to one line that names the flag. */
function flagError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  const flag = /'(-[^' ]+)/.exec(message)?.[1];
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag ${flag ?? message} (see --help)`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return message.includes("argument missing")
        ? `${flag ?? "a flag"} needs a value`
        : `${flag ?? "a flag"} takes no value (use --${(flag ?? "").replace(/^--/, "")} or --no-${(flag ?? "").replace(/^--/, "")})`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${/'([^']*)'/.exec(message)?.[1] ?? ""} (flags start with --; see --help)`;
    default:
      return message.split("\n")[0] ?? message;
  }
}

/** The OpenTelemetry SDK starts when any OTEL_* variable is set, unless OTEL_SDK_DISABLED=true. */
function telemetryWanted(env: Readonly<Record<string, string | undefined>>): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  return Object.entries(env).some(([name, v]) => name.startsWith("OTEL_") && v !== undefined && v !== "");
}

function reason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.code ?? e.message ?? String(err);
}
