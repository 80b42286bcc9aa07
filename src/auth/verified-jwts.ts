/**
 * JWTs verified a moment ago, so a CI job presenting the same token on every call of its run pays
 * for the signature check once instead of on each call (jose's WebCrypto verify and its claim
 * checks, done on every call, were over a tenth of a small GetState's time).
 *
 * What keeps it sound:
 * - Only a token that passed every check enters; a refused one is checked again each time.
 * - An entry lasts until the token's `exp` (without the clock leeway; past it the full check,
 *   leeway and all, decides again) and at most `maxAgeMs` after it was verified, so a key the
 *   issuer withdraws stops being accepted within that time, as the JWKS cache allows anyway.
 * - Keyed by the token's SHA-256: the cache never holds a credential, and a token differing by one
 *   character is another key.
 * - At most `maxEntries`; the oldest goes first. Entries are made by valid tokens only, so
 *   callers cannot fill it with junk.
 */
import { createHash } from "node:crypto";
import type { Principal } from "../rpc/principal.ts";

export interface VerifiedJwtsOptions {
  /** How many tokens are kept; 0 keeps none (every call verifies). */
  maxEntries: number;
  /** How long after its verification a token is accepted without another. */
  maxAgeMs: number;
}

export const DEFAULT_VERIFIED_JWTS: VerifiedJwtsOptions = { maxEntries: 1024, maxAgeMs: 60_000 };

interface Entry {
  principal: Principal;
  /** Epoch milliseconds after which the entry is not used. */
  until: number;
}

export class VerifiedJwts {
  readonly #entries = new Map<string, Entry>();
  readonly #opts: VerifiedJwtsOptions;

  constructor(opts: VerifiedJwtsOptions = DEFAULT_VERIFIED_JWTS) {
    this.#opts = opts;
  }

  /** The principal of `jwt` when it was verified recently and has not expired since. */
  get(jwt: string): Principal | undefined {
    if (this.#opts.maxEntries === 0) return undefined;
    const key = digest(jwt);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (Date.now() >= entry.until) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.principal;
  }

  /** Remembers a token that has just passed verification; `exp` in seconds since the epoch. */
  set(jwt: string, principal: Principal, exp: number): void {
    if (this.#opts.maxEntries === 0) return;
    const now = Date.now();
    const until = Math.min(exp * 1000, now + this.#opts.maxAgeMs);
    if (!(until > now)) return;
    const key = digest(jwt);
    this.#entries.delete(key);
    while (this.#entries.size >= this.#opts.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { principal, until });
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}

function digest(jwt: string): string {
  return createHash("sha256").update(jwt, "utf8").digest("base64url");
}
