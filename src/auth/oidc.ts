/**
 * OIDC JWTs from trusted issuers (GitHub Actions, GitLab CI, any OpenID provider), verified with
 * jose: the signature with the issuer's keys, `iss` exactly, `aud` containing a configured
 * audience, `exp` and `nbf` with a small leeway, and the algorithm among the asymmetric ones
 * allowed (jose never accepts `none`; HS* is not allowed, so a public key can never be used as an
 * HMAC secret).
 *
 * Keys come from the issuer's discovery document (fetched once, in the background from the start,
 * retried with backoff while it fails) and then jose's remote JWKS, which caches the keys and
 * fetches them again for an unknown `kid` (at most once per cooldown) and when they are old; if
 * that fetch fails the keys fetched last are used, and a kid they lack is "unavailable", not bad. An issuer with a `jwks_file` is never contacted.
 * A token that passed is accepted again without another check until its `exp`, for at most a
 * minute (verified-jwts.ts says why that is sound).
 */
import { readFile } from "node:fs/promises";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { UnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Principal } from "../rpc/principal.ts";
import { IdentityFileError } from "./config-file.ts";
import type { OidcIssuerConfig } from "./oidc-config.ts";
import { DEFAULT_DISCOVERY_TIMEOUT_MS, discoverJwksUri } from "./oidc-discovery.ts";
import { CredentialRefused } from "./refusal.ts";
import { DEFAULT_VERIFIED_JWTS, VerifiedJwts, type VerifiedJwtsOptions } from "./verified-jwts.ts";

export interface OidcVerifierOptions {
  issuers: readonly OidcIssuerConfig[];
  logger: Logger;
  /** Per discovery or JWKS request. Default 5 s. */
  fetchTimeoutMs?: number | undefined;
  /** After a JWKS fetch, how long an unknown `kid` waits before the keys are fetched again. Default 30 s. */
  jwksCooldownMs?: number | undefined;
  /** How long fetched keys are used before they are fetched again. Default 10 min. */
  jwksMaxAgeMs?: number | undefined;
  /** Backoff between failed discovery attempts: first wait, doubling up to the max. Default 1 s .. 60 s. */
  discoveryRetry?: { initialMs: number; maxMs: number } | undefined;
  /** Tokens verified recently, accepted again without another check (verified-jwts.ts). Default 1024, 60 s. */
  verifiedJwts?: VerifiedJwtsOptions | undefined;
}

export interface OidcVerifier {
  /** The principal of a valid JWT; CredentialRefused when it is not; UnavailableError when keys cannot be had. */
  verify(jwt: string): Promise<Principal>;
  readonly issuers: readonly string[];
  close(): void;
}

const DEFAULT_COOLDOWN_MS = 30_000;
const DEFAULT_MAX_AGE_MS = 10 * 60_000;
const DEFAULT_RETRY = { initialMs: 1000, maxMs: 60_000 };

interface IssuerSettings {
  logger: Logger;
  fetchTimeoutMs: number;
  jwksCooldownMs: number;
  jwksMaxAgeMs: number;
  discoveryRetry: { initialMs: number; maxMs: number };
}

/** The keys of one issuer could not be fetched (not the token's fault). */
class KeysUnavailable extends Error {}

function reason(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string } };
  return [e.code, e.cause?.code, e.message].filter((s) => s !== undefined && s !== "").join(": ");
}

/** A failed JWKS fetch, as jose reports it: a timeout, a network error, a bad response. */
function isFetchFailure(err: unknown): boolean {
  if (!(err instanceof errors.JOSEError)) return true;
  return (
    err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err.code === "ERR_JOSE_GENERIC"
  );
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

async function readJwksFile(file: string, issuer: string): Promise<JWTVerifyGetKey> {
  let jwks: unknown;
  try {
    jwks = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    const e = err as { code?: string; message?: string };
    throw new IdentityFileError(`jwks_file ${file} of issuer ${issuer}: ${e.code ?? e.message}`);
  }
  try {
    return createLocalJWKSet(jwks as JSONWebKeySet);
  } catch (err) {
    throw new IdentityFileError(`jwks_file ${file} of issuer ${issuer}: not a JWKS: ${reason(err)}`);
  }
}

/** One trusted issuer and the way to its keys. */
class Issuer {
  readonly config: OidcIssuerConfig;
  readonly host: string;
  #keys: JWTVerifyGetKey | undefined;
  #pending: Promise<JWTVerifyGetKey> | undefined;
  #failures = 0;
  #retryAt = 0;
  readonly #opts: IssuerSettings;
  readonly #abort = new AbortController();

  constructor(config: OidcIssuerConfig, keys: JWTVerifyGetKey | undefined, opts: IssuerSettings) {
    this.config = config;
    this.host = new URL(config.issuer).host;
    this.#keys = keys;
    this.#opts = opts;
  }

  /** The key resolver; discovers it first (one attempt at a time, none during the backoff). */
  keys(): Promise<JWTVerifyGetKey> {
    if (this.#keys) return Promise.resolve(this.#keys);
    if (this.#pending) return this.#pending;
    if (Date.now() < this.#retryAt) {
      return Promise.reject(new KeysUnavailable("discovery failed recently; waiting before trying again"));
    }
    const { logger } = this.#opts;
    const issuer = this.config.issuer;
    this.#pending = discoverJwksUri(issuer, {
      timeoutMs: this.#opts.fetchTimeoutMs,
      signal: this.#abort.signal,
    }).then(
      (uri) => {
        this.#failures = 0;
        this.#keys = this.#remote(uri);
        logger.info("oidc issuer discovered", { issuer, jwksUri: uri.href });
        return this.#keys;
      },
      (err: unknown) => {
        this.#failures++;
        const { initialMs, maxMs } = this.#opts.discoveryRetry;
        const waitMs = Math.min(maxMs, initialMs * 2 ** (this.#failures - 1));
        this.#retryAt = Date.now() + waitMs;
        logger.warn(
          "oidc discovery failed; tokens of this issuer are refused as unavailable until it works",
          {
            issuer,
            error: (err as Error).message,
            failures: this.#failures,
            retryInMs: waitMs,
          },
        );
        throw new KeysUnavailable((err as Error).message);
      },
    );
    const pending = this.#pending;
    void pending
      .finally(() => {
        if (this.#pending === pending) this.#pending = undefined;
      })
      .catch(() => {});
    return pending;
  }

  #remote(uri: URL): JWTVerifyGetKey {
    const { logger } = this.#opts;
    const remote = createRemoteJWKSet(uri, {
      timeoutDuration: this.#opts.fetchTimeoutMs,
      cooldownDuration: this.#opts.jwksCooldownMs,
      cacheMaxAge: this.#opts.jwksMaxAgeMs,
    });
    // Fetched now, so the first token does not wait; a failure here is retried by the first token.
    remote.reload().catch(() => {});
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        if (!isFetchFailure(err)) throw err;
        const last = remote.jwks();
        if (last === undefined) throw new KeysUnavailable(`cannot fetch ${uri.href}: ${reason(err)}`);
        logger.warn("cannot fetch the issuer's keys; using the keys fetched before", {
          issuer: this.config.issuer,
          jwksUri: uri.href,
          error: reason(err),
        });
        try {
          return await createLocalJWKSet(last)(header, token);
        } catch (stale) {
          // Perhaps a key published since: it cannot be checked now, which is not the token's fault.
          if (stale instanceof errors.JWKSNoMatchingKey) {
            throw new KeysUnavailable(`cannot fetch ${uri.href}: ${reason(err)}`);
          }
          throw stale;
        }
      }
    };
  }

  close(): void {
    this.#abort.abort();
  }
}

/** Loads every jwks_file (throwing IdentityFileError) and starts discovering the other issuers. */
export async function createOidcVerifier(opts: OidcVerifierOptions): Promise<OidcVerifier> {
  const settings: IssuerSettings = {
    logger: opts.logger,
    fetchTimeoutMs: opts.fetchTimeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS,
    jwksCooldownMs: opts.jwksCooldownMs ?? DEFAULT_COOLDOWN_MS,
    jwksMaxAgeMs: opts.jwksMaxAgeMs ?? DEFAULT_MAX_AGE_MS,
    discoveryRetry: opts.discoveryRetry ?? DEFAULT_RETRY,
  };
  const byIssuer = new Map<string, Issuer>();
  for (const config of opts.issuers) {
    const local = config.jwksFile ? await readJwksFile(config.jwksFile, config.issuer) : undefined;
    byIssuer.set(config.issuer, new Issuer(config, local, settings));
  }
  // The first CI job should not wait for discovery; a failure here is logged and retried on use.
  for (const issuer of byIssuer.values()) issuer.keys().catch(() => {});
  const verified = new VerifiedJwts(opts.verifiedJwts ?? DEFAULT_VERIFIED_JWTS);

  return {
    issuers: [...byIssuer.keys()],
    async verify(jwt) {
      const known = verified.get(jwt);
      if (known !== undefined) return known;
      let unverified: JWTPayload;
      try {
        unverified = decodeJwt(jwt);
      } catch (err) {
        throw new CredentialRefused(`not a JWT: ${reason(err)}`);
      }
      const iss = unverified.iss;
      const issuer = typeof iss === "string" ? byIssuer.get(iss) : undefined;
      if (issuer === undefined) {
        throw new CredentialRefused(
          typeof iss === "string"
            ? `the JWT's issuer ${JSON.stringify(iss.slice(0, 200))} is not a trusted issuer`
            : "the JWT has no iss claim",
        );
      }
      const { config } = issuer;
      let payload: JWTPayload;
      try {
        const keys = await issuer.keys();
        ({ payload } = await jwtVerify(jwt, keys, {
          issuer: config.issuer,
          audience: [...config.audiences],
          algorithms: [...config.algorithms],
          clockTolerance: config.clockToleranceMs / 1000,
          requiredClaims: ["sub", "exp"],
        }));
      } catch (err) {
        if (err instanceof KeysUnavailable) {
          opts.logger.debug("oidc keys unavailable", { issuer: config.issuer, error: err.message });
          throw new UnavailableError(
            "cannot verify the token now: its issuer's signing keys cannot be fetched; try again later",
          );
        }
        if (err instanceof errors.JOSEError) throw new CredentialRefused(`${config.issuer}: ${reason(err)}`);
        throw err;
      }
      const sub = payload.sub;
      if (typeof sub !== "string" || sub === "")
        throw new CredentialRefused(`${config.issuer}: empty sub claim`);
      const principal: Principal = Object.freeze({
        method: "oidc",
        name: `oidc:${issuer.host}:${sub}`,
        issuer: config.issuer,
        subject: sub,
        claims: deepFreeze({ ...payload }),
      });
      // exp is a required claim, so jwtVerify has checked it is a number.
      verified.set(jwt, principal, payload.exp as number);
      return principal;
    },
    close() {
      verified.clear();
      for (const issuer of byIssuer.values()) issuer.close();
    },
  };
}
