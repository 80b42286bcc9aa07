/**
 * Parsers for setting values. Each returns the value or throws a ValueError saying what was
 * expected; the caller adds which flag or variable it came from.
 */
import { normalizeHostEntry, normalizeOrigin } from "../http/browser-guards.ts";

export class ValueError extends Error {}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)/;

/** A Go-style duration ("30s", "10m", "1h30m", "500ms", "0") in milliseconds. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  if (s === "" || !DURATION_RE.test(s)) {
    throw new ValueError("expected a duration with a unit, such as 500ms, 30s, 10m or 1h30m");
  }
  let rest = s;
  let total = 0;
  while (rest !== "") {
    const m = DURATION_RE.exec(rest);
    if (!m) throw new ValueError("expected a duration with a unit, such as 500ms, 30s, 10m or 1h30m");
    const [all, amount = "", unit = ""] = m;
    total += Number(amount) * (DURATION_UNITS[unit] ?? Number.NaN);
    rest = rest.slice(all.length);
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER)
    throw new ValueError("duration is too long");
  return Math.round(total);
}

/** Whole seconds, as the seed's TF_BACKEND_ORAS_* variables give durations, in milliseconds. */
export function parseSeconds(text: string): number {
  return parseNonNegativeInt(text) * 1000;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** A byte count: "268435456", "256MiB", "1GiB", "512kB" (kB/MB/GB are powers of 1000). */
export function parseByteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const factor = m ? SIZE_UNITS[(m[2] ?? "").toLowerCase()] : undefined;
  if (!m || factor === undefined) {
    throw new ValueError("expected a size in bytes, such as 268435456, 256MiB or 1GiB");
  }
  const bytes = Number(m[1]) * factor;
  if (!Number.isInteger(bytes) || bytes > Number.MAX_SAFE_INTEGER) {
    throw new ValueError("expected a whole number of bytes");
  }
  return bytes;
}

export function parseNonNegativeInt(text: string): number {
  const s = text.trim();
  if (!/^\d+$/.test(s)) throw new ValueError("expected a whole number (0 or more)");
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new ValueError("number is too large");
  return n;
}

export function parsePositiveInt(text: string): number {
  const n = parseNonNegativeInt(text);
  if (n === 0) throw new ValueError("expected a whole number of 1 or more");
  return n;
}

/** A rate: a non-negative decimal such as 10 or 2.5. */
export function parseRate(text: string): number {
  const s = text.trim();
  if (!/^\d+(?:\.\d+)?$/.test(s))
    throw new ValueError("expected a number of requests per second (0 or more)");
  return Number(s);
}

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off", ""]);

export function parseBool(text: string): boolean {
  const s = text.trim().toLowerCase();
  if (TRUE.has(s)) return true;
  if (FALSE.has(s)) return false;
  throw new ValueError("expected true or false");
}

export function parseChoice<T extends string>(choices: readonly T[]): (text: string) => T {
  return (text) => {
    const s = text.trim().toLowerCase();
    const found = choices.find((c) => c === s);
    if (found === undefined) throw new ValueError(`expected one of ${choices.join(", ")}`);
    return found;
  };
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** `host:port`, `[v6]:port`, or `:port` (every interface). */
export function parseListen(text: string): ListenAddress {
  const s = text.trim();
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(s);
  if (!m) throw new ValueError("expected host:port, such as 127.0.0.1:8080, [::1]:8080 or :8080");
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65535) throw new ValueError("port must be between 0 and 65535");
  const host = m[1] ?? m[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/** `host[:port]/path` of a registry repository (no scheme), or `oci-layout:DIR`. */
export function parseRepository(text: string): string {
  const repo = text.trim();
  if (repo.startsWith("oci-layout:")) {
    if (repo === "oci-layout:") throw new ValueError("oci-layout: needs a directory, e.g. oci-layout:./data");
    return repo;
  }
  if (repo.includes("://"))
    throw new ValueError("expected host[:port]/path without a scheme, or oci-layout:DIR");
  if (!/^[^/\s]+\/\S+$/.test(repo)) throw new ValueError("expected host[:port]/path, or oci-layout:DIR");
  return repo;
}

/** A duration that must be longer than zero. */
export function parsePositiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms <= 0) throw new ValueError("expected a duration longer than 0, such as 2s");
  return ms;
}

/** A comma-separated list; empty items are dropped. */
function list(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Comma-separated origins, `scheme://host[:port]` each (http or https), normalized. */
export function parseOriginList(text: string): string[] {
  return list(text).map((item) => {
    if (item === "*") {
      throw new ValueError("* is not allowed: it would let any web page change states; name each origin");
    }
    try {
      return normalizeOrigin(item);
    } catch (err) {
      throw new ValueError((err as Error).message);
    }
  });
}

/** Comma-separated host names or addresses without ports, `*.domain`, or `*` (any host). */
export function parseHostList(text: string): string[] {
  const hosts = list(text);
  if (hosts.length === 0) throw new ValueError("expected host names, or * for any host");
  return hosts.map((item) => {
    try {
      return normalizeHostEntry(item);
    } catch (err) {
      throw new ValueError((err as Error).message);
    }
  });
}

/** `on` (1), `off` (0), or a fraction between 0 and 1. */
export function parseFraction(text: string): number {
  const s = text.trim().toLowerCase();
  if (s === "on") return 1;
  if (s === "off") return 0;
  const n = /^(?:0|1|0?\.\d+|1\.0*)$/.test(s) ? Number(s) : Number.NaN;
  if (!(n >= 0 && n <= 1))
    throw new ValueError("expected on, off, or a fraction between 0 and 1 such as 0.1");
  return n;
}

/** Message sizes: 1 MiB stream chunks must fit, also as JSON (base64). */
export const MIN_MESSAGE_BYTES = 2 * 1024 * 1024;

export function parseMessageSize(text: string): number {
  const bytes = parseByteSize(text);
  if (bytes < MIN_MESSAGE_BYTES) throw new ValueError("must be at least 2MiB, so 1 MiB stream chunks fit");
  return bytes;
}

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * An OIDC issuer URL, kept exactly as written (a token's `iss` must equal it character for
 * character). https only; plain http only on a loopback host, for an issuer run beside the service.
 */
export function parseIssuerUrl(text: string): string {
  const s = text.trim();
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new ValueError("expected an issuer URL such as https://token.actions.githubusercontent.com");
  }
  const loopback = LOOPBACK_HOSTS.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback))
    throw new ValueError("an issuer URL must be https (plain http only on a loopback host)");
  if (url.search !== "" || url.hash !== "" || s.includes("?") || s.includes("#"))
    throw new ValueError("an issuer URL has no query or fragment");
  if (url.username !== "" || url.password !== "") throw new ValueError("an issuer URL has no credentials");
  return s;
}
