/**
 * The credential a request presents, read from its Authorization header: `Bearer <token|jwt>` on
 * every surface, and for the http backend also HTTP Basic whose password is the token or JWT (the
 * CLI sends `username`/`password`, so `TF_HTTP_PASSWORD` can hold either). A malformed header or
 * another scheme is refused here with a message that says what is expected; whether the credential
 * itself is good is for the token set and the OIDC verifier to decide.
 */
import { UnauthenticatedError } from "../errors.ts";

export type Credential =
  | { kind: "none" }
  /** Three base64url parts separated by dots: verified as an OIDC JWT. */
  | { kind: "jwt"; value: string }
  /** Anything else: looked up in the tokens file. */
  | { kind: "token"; value: string };

/** Which surface the request came in on, as the server's AuthRequest says. */
export type Surface = "rpc" | "http";

/** RFC 6750's b64token (token68). API tokens and JWTs both fit it. */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
/** The signature part may be empty so that an `alg: none` JWT is seen as a JWT (and refused as one). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** IANA's HTTP authentication schemes other than Basic and Bearer, named back when refused. */
const KNOWN_SCHEMES: ReadonlySet<string> = new Set([
  "concealed",
  "digest",
  "dpop",
  "gnap",
  "hoba",
  "mutual",
  "negotiate",
  "ntlm",
  "oauth",
  "privatetoken",
  "scram-sha-1",
  "scram-sha-256",
  "vapid",
  "aws4-hmac-sha256",
  "token",
]);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Far more than any JWT an issuer sends; a longer credential is refused before any work. */
export const MAX_CREDENTIAL_LENGTH = 16 * 1024;

/** True when `s` has the shape of a compact JWS (a JWT); else it is an API token. */
export function isJwtShaped(s: string): boolean {
  return JWT_SHAPE.test(s);
}

function classify(value: string): Credential {
  return isJwtShaped(value) ? { kind: "jwt", value } : { kind: "token", value };
}

function expected(surface: Surface): string {
  return surface === "rpc"
    ? "Authorization: Bearer <token>"
    : "Authorization: Bearer <token>, or Basic with the token as the password";
}

function malformed(surface: Surface, what: string): UnauthenticatedError {
  return new UnauthenticatedError(`malformed Authorization header: ${what}; expected ${expected(surface)}`);
}

/** Reads the request's credential; throws UnauthenticatedError for a header it cannot use. */
export function readCredential(headers: Headers, surface: Surface): Credential {
  const header = headers.get("authorization");
  if (header === null || header.trim() === "") return { kind: "none" };
  if (header.length > MAX_CREDENTIAL_LENGTH) throw malformed(surface, "too long");
  const space = header.indexOf(" ");
  const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
  const rest = space === -1 ? "" : header.slice(space + 1).trim();
  if (scheme === "bearer") {
    if (rest === "") throw malformed(surface, "Bearer without a token");
    // Two Authorization headers arrive joined by ", ", which is no token68 either.
    if (!TOKEN68.test(rest)) throw malformed(surface, "the Bearer token has characters a token cannot have");
    return classify(rest);
  }
  if (scheme === "basic") {
    if (surface === "rpc") {
      throw new UnauthenticatedError(
        "RPC calls take Authorization: Bearer <token>; Basic is for the Terraform http backend",
      );
    }
    if (!BASE64.test(rest)) throw malformed(surface, "Basic credentials are not base64");
    const decoded = Buffer.from(rest, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon === -1) throw malformed(surface, "Basic credentials without a colon");
    const password = decoded.slice(colon + 1);
    if (password === "") {
      throw malformed(surface, "the Basic password is empty (it must be the API token or the JWT)");
    }
    return classify(password);
  }
  // Only a registered scheme name is echoed: a bare secret sent without a scheme must not be.
  const shown = KNOWN_SCHEMES.has(scheme)
    ? `the Authorization scheme ${scheme} is`
    : "this Authorization scheme is";
  throw new UnauthenticatedError(`${shown} not supported; expected ${expected(surface)}`);
}
