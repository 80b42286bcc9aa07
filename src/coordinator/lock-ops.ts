import type { CallOptions } from "../call-options.ts";
import { UnavailableError } from "../errors.ts";
import type { LockInfo, StateManager } from "../oras/index.ts";
import { type KnownLock, knownFromStatus } from "./lock-tracker.ts";

/**
 * The registry requests of the lock protocol, on top of the core's StateManager. Each function
 * says what it costs; the core owns the wire format and the verify-after-write.
 */

/**
 * Reads the lock tag, conditionally when `known` has a digest: a 304 (no body) in steady state,
 * or a 404 when the tag is absent. One request.
 */
export async function readLock(
  mgr: StateManager,
  known: KnownLock | undefined,
  opts?: CallOptions,
): Promise<KnownLock> {
  const digest = known?.digest ?? undefined;
  const status = await mgr.lockStatus({ ...opts, ifNoneMatch: digest });
  if (status.state !== "unchanged") return knownFromStatus(status);
  if (known !== undefined && known.digest === status.digest) return known;
  // An answer "unchanged" to a digest we did not send: read it in full.
  return knownFromStatus(await unconditional(mgr, opts));
}

async function unconditional(mgr: StateManager, opts?: CallOptions) {
  const status = await mgr.lockStatus(opts);
  if (status.state === "unchanged") {
    throw new UnavailableError(
      `the registry answered "not modified" to an unconditional read of the lock of ${mgr.workspace}`,
    );
  }
  return status;
}

/**
 * Takes the lock through the core (read, write, verify: 3 requests); the core returns the lock as
 * verified, with the digest, generation and lease it was stored with. The write is not
 * cancellable: a lock write cut short between its PUT and its verify would leave a lock nobody
 * knows it holds.
 */
export async function takeLock(mgr: StateManager, info: LockInfo): Promise<KnownLock & { state: "locked" }> {
  const stored = knownFromStatus(await mgr.acquireLock(info));
  if (stored.state !== "locked") throw new UnavailableError(`the lock of ${mgr.workspace} read back as free`);
  return stored;
}

/**
 * Releases the lock through the core. With the digest the caller has just verified, the core
 * deletes it directly (1 request); without, it reads the tag again and deletes the digest it read
 * (2 requests). Deleting by digest never removes a newer holder's lock. Not cancellable, like
 * `takeLock`.
 */
export async function releaseLock(
  mgr: StateManager,
  id: string,
  force: boolean,
  knownDigest?: string,
): Promise<void> {
  await mgr.unlock(id, { force, knownDigest });
}
