/**
 * OpenID Connect Discovery: the issuer's `/.well-known/openid-configuration` names its JWKS. The
 * document must name the same issuer (OIDC Discovery 1.0, section 4.3), so a document served for
 * another issuer cannot hand over its keys.
 */
import { isRecord } from "./config-file.ts";

export class DiscoveryError extends Error {}

export const DEFAULT_DISCOVERY_TIMEOUT_MS = 5000;
const MAX_DOCUMENT_BYTES = 1024 * 1024;

export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}

/** Fetches the discovery document and returns its `jwks_uri`. */
export async function discoverJwksUri(
  issuer: string,
  opts: { timeoutMs?: number | undefined; signal?: AbortSignal | undefined } = {},
): Promise<URL> {
  const url = discoveryUrl(issuer);
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: "application/json" }, redirect: "error", signal });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === "TimeoutError" ? "timed out" : (e.cause?.code ?? e.message);
    throw new DiscoveryError(`cannot fetch ${url}: ${why}`);
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new DiscoveryError(`${url} answered ${res.status}`);
  }
  const length = Number(res.headers.get("content-length") ?? "0");
  if (length > MAX_DOCUMENT_BYTES) {
    await res.body?.cancel();
    throw new DiscoveryError(`${url} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  }
  let doc: unknown;
  try {
    const text = await res.text();
    if (text.length > MAX_DOCUMENT_BYTES) throw new Error("too large");
    doc = JSON.parse(text);
  } catch (err) {
    throw new DiscoveryError(`${url} is not a JSON document: ${(err as Error).message}`);
  }
  if (!isRecord(doc)) throw new DiscoveryError(`${url} is not a JSON object`);
  if (doc.issuer !== issuer) {
    throw new DiscoveryError(
      `${url} names issuer ${JSON.stringify(doc.issuer)}, not ${JSON.stringify(issuer)}`,
    );
  }
  if (typeof doc.jwks_uri !== "string") throw new DiscoveryError(`${url} has no jwks_uri`);
  let jwks: URL;
  try {
    jwks = new URL(doc.jwks_uri);
  } catch {
    throw new DiscoveryError(`${url} has a jwks_uri that is not a URL`);
  }
  // Keys over https; plain http only when the issuer itself is (a loopback issuer, as checked).
  if (jwks.protocol !== "https:" && !(jwks.protocol === "http:" && issuer.startsWith("http:"))) {
    throw new DiscoveryError(`${url} has a jwks_uri that is not https`);
  }
  return jwks;
}
