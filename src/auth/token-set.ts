/**
 * Matching a presented API token against the tokens file: the SHA-256 of what was presented is
 * compared in constant time (crypto.timingSafeEqual, equal-length digests) with every entry's
 * hash, all of them, so neither the time of a comparison nor the number made tells which entry
 * matched or how much of a secret was right.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Principal } from "../rpc/principal.ts";
import type { TokenEntry } from "./token-file.ts";

/** What `oci-tfstate token create` makes: `otfs_` and 32 random bytes in base64url (43 chars). */
export const SECRET_PREFIX = "otfs_";

export function newSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString("base64url");
}

export function sha256(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

export class TokenSet {
  readonly #entries: readonly { entry: TokenEntry; principal: Principal }[];

  constructor(entries: readonly TokenEntry[]) {
    this.#entries = entries.map((entry) => ({
      entry,
      principal: Object.freeze({ method: "token", name: entry.name, token: entry.name }),
    }));
  }

  get size(): number {
    return this.#entries.length;
  }

  get names(): string[] {
    return this.#entries.map((e) => e.entry.name);
  }

  /** The principal of the entry whose hash is the secret's, or undefined. */
  match(secret: string): Principal | undefined {
    const digest = sha256(secret);
    let found: Principal | undefined;
    for (const { entry, principal } of this.#entries) {
      // No early exit: every entry is compared whatever the earlier ones gave.
      const equal = timingSafeEqual(digest, entry.sha256);
      if (equal && found === undefined) found = principal;
    }
    return found;
  }
}
