/**
 * Trusted OIDC issuers: one from `--oidc-issuer URL --oidc-audience AUD`, or several from
 * `--oidc-config FILE` (YAML or JSON):
 *
 * ```yaml
 * issuers:
 *   - issuer: https://token.actions.githubusercontent.com
 *     audience: oci-tfstate                        # required; a list allows several
 *     jwks_file: /etc/oci-tfstate/gh.jwks.json     # optional: no discovery, keys from the file
 *     algorithms: [RS256, ES256]                   # optional; default every asymmetric one
 *     clock_tolerance: 30s                         # optional; default 30s, at most 5m
 * ```
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseDuration, parseIssuerUrl, ValueError } from "../config/values.ts";
import {
  type FileNode,
  IdentityFileError,
  isRecord,
  onlyFields,
  type ParsedFile,
  parseIdentityFile,
} from "./config-file.ts";

/** Asymmetric signatures only: never `none`, never HS* (a public key must not become an HMAC secret). */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
export type OidcAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export const DEFAULT_CLOCK_TOLERANCE_MS = 30_000;
const MAX_CLOCK_TOLERANCE_MS = 5 * 60_000;

export interface OidcIssuerConfig {
  /** Exactly as configured; a token's `iss` must equal it. */
  readonly issuer: string;
  /** A token's `aud` must contain one of these. */
  readonly audiences: readonly string[];
  /** Keys from this JWKS file instead of the issuer's discovery document (air-gapped sites). */
  readonly jwksFile: string | undefined;
  readonly algorithms: readonly OidcAlgorithm[];
  /** Leeway for `exp` and `nbf`. */
  readonly clockToleranceMs: number;
}

/** The issuer given by `--oidc-issuer` and `--oidc-audience` (both already checked). */
export function issuerFromFlags(issuer: string, audience: string): OidcIssuerConfig {
  return {
    issuer,
    audiences: [audience],
    jwksFile: undefined,
    algorithms: ASYMMETRIC_ALGORITHMS,
    clockToleranceMs: DEFAULT_CLOCK_TOLERANCE_MS,
  };
}

const FIELDS = ["issuer", "audience", "jwks_file", "algorithms", "clock_tolerance"] as const;

/** Parses an `--oidc-config` file; relative `jwks_file` paths are relative to the file's directory. */
export function parseOidcConfig(text: string, file: string): OidcIssuerConfig[] {
  const parsed: ParsedFile = parseIdentityFile(text, file);
  const { root } = parsed;
  if (!isRecord(root.value)) parsed.fail(root, undefined, "expected a mapping with an `issuers:` list");
  onlyFields(parsed, root, ["issuers"]);
  const list = root.child("issuers");
  if (!Array.isArray(list.value) || list.value.length === 0) {
    parsed.fail(root, "issuers", "expected a list of at least one issuer");
  }
  const out: OidcIssuerConfig[] = [];
  const seen = new Map<string, string>();
  for (let i = 0; i < list.value.length; i++) {
    const node = list.child(i);
    if (!isRecord(node.value)) parsed.fail(node, undefined, "expected a mapping with issuer and audience");
    onlyFields(parsed, node, FIELDS);
    const issuer = value(parsed, node, "issuer", parseIssuerUrl);
    const other = seen.get(issuer);
    if (other !== undefined) parsed.fail(node, "issuer", `this issuer is already configured by ${other}`);
    seen.set(issuer, node.where());
    out.push({
      issuer,
      audiences: audiences(parsed, node),
      jwksFile: optional(parsed, node, "jwks_file", (s) => {
        if (s.trim() === "") throw new ValueError("must not be empty");
        return path.resolve(path.dirname(file), s);
      }),
      algorithms: algorithms(parsed, node),
      clockToleranceMs:
        optional(parsed, node, "clock_tolerance", (s) => {
          const ms = parseDuration(s);
          if (ms > MAX_CLOCK_TOLERANCE_MS)
            throw new ValueError("must be at most 5m: a leeway, not a lifetime");
          return ms;
        }) ?? DEFAULT_CLOCK_TOLERANCE_MS,
    });
  }
  return out;
}

function value<T>(parsed: ParsedFile, node: FileNode, field: string, parse: (s: string) => T): T {
  const v = node.child(field).value;
  if (v === undefined || v === null) parsed.fail(node, field, "is required");
  return parseString(parsed, node, field, v, parse);
}

function optional<T>(
  parsed: ParsedFile,
  node: FileNode,
  field: string,
  parse: (s: string) => T,
): T | undefined {
  const v = node.child(field).value;
  return v === undefined || v === null ? undefined : parseString(parsed, node, field, v, parse);
}

function parseString<T>(
  parsed: ParsedFile,
  node: FileNode,
  field: string,
  v: unknown,
  parse: (s: string) => T,
): T {
  if (typeof v !== "string") parsed.fail(node, field, "expected a string");
  try {
    return parse(v);
  } catch (err) {
    if (err instanceof ValueError) parsed.fail(node, field, err.message);
    throw err;
  }
}

function audiences(parsed: ParsedFile, node: FileNode): string[] {
  const v = node.child("audience").value;
  if (v === undefined || v === null) {
    parsed.fail(node, "audience", "is required (the `aud` the service accepts, e.g. oci-tfstate)");
  }
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0 || !list.every((a) => typeof a === "string" && a.trim() !== "")) {
    parsed.fail(node, "audience", "expected a non-empty string or a list of them");
  }
  return list as string[];
}

function algorithms(parsed: ParsedFile, node: FileNode): OidcAlgorithm[] {
  const v = node.child("algorithms").value;
  if (v === undefined || v === null) return [...ASYMMETRIC_ALGORITHMS];
  if (!Array.isArray(v) || v.length === 0) parsed.fail(node, "algorithms", "expected a list of algorithms");
  const allowed: readonly string[] = ASYMMETRIC_ALGORITHMS;
  for (const a of v) {
    if (typeof a !== "string" || !allowed.includes(a)) {
      const why =
        typeof a === "string" && (a.toLowerCase() === "none" || /^HS\d+$/i.test(a))
          ? `${a} is never accepted (unsigned, or symmetric)`
          : `unknown algorithm ${JSON.stringify(a)}`;
      parsed.fail(node, "algorithms", `${why}; allowed: ${ASYMMETRIC_ALGORITHMS.join(", ")}`);
    }
  }
  return v as OidcAlgorithm[];
}

/** Reads and parses an `--oidc-config` file; IdentityFileError when it cannot be used. */
export async function loadOidcConfig(file: string): Promise<OidcIssuerConfig[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const e = err as { code?: string; message?: string };
    throw new IdentityFileError(`cannot read the OIDC issuers file ${file}: ${e.code ?? e.message}`);
  }
  return parseOidcConfig(text, file);
}
