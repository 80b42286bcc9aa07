import { UnavailableError } from "../errors.ts";
import type { CallOptions } from "../oci/target.ts";
import { LockError, type LockInfo, type StateManager } from "../oras/index.ts";
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
 * Takes the lock through the core (read, write, verify: 3 requests) and reads it back once more
 * to learn the digest, generation and lease it was stored with (1 request; the core verifies the
 * same manifest but does not return it). The write is not cancellable: a lock write cut short
 * between its PUT and its verify would leave a lock nobody knows it holds.
 */
export async function takeLock(mgr: StateManager, info: LockInfo): Promise<KnownLock & { state: "locked" }> {
  await mgr.lock(info);
  const stored = knownFromStatus(await unconditional(mgr));
  if (stored.state === "locked" && !stored.corrupt && stored.info.id === info.id) return stored;
  // Replaced between the core's verify and our read: someone else holds it now.
  const holder = stored.state === "locked" ? stored.info : { ...info, id: "" };
  throw new LockError(
    `workspace ${JSON.stringify(mgr.workspace)} was locked by ${holder.who || "another holder"} ` +
      `(lock ID ${holder.id}) right after this lock was written (lost the race for the lock)`,
    holder,
    stored.state === "locked" ? { generation: stored.generation } : {},
  );
}

/**
 * Releases the lock through the core: it reads the tag again and deletes the digest it read, so
 * a newer holder's lock is never removed (2 requests). Not cancellable, like `takeLock`.
 */
export async function releaseLock(mgr: StateManager, id: string, force: boolean): Promise<void> {
  await mgr.unlock(id, { force });
}
