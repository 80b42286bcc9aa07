import type { CallOptions } from "../call-options.ts";
import { InvalidArgumentError, NotFoundError, UnavailableError, UnimplementedError } from "../errors.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { CoreContext } from "./core-context.ts";
import { msToUnixNano, unixNanoToMs } from "./go-time.ts";
import { LockError, type LockHolder, lockHeldError, lockIdMismatchError } from "./lock-error.ts";
import { emptyLockInfo, type LockInfo } from "./lock-info.ts";
import {
  type LockGeneration,
  packLockManifest,
  packUnlockedSentinel,
  parseLockManifest,
} from "./manifests.ts";
import type { WorkspaceTags } from "./workspace-names.ts";

/**
 * The lock protocol ghoten speaks (docs/oras-wire-format.md §4): a manifest under `locked-<wsTag>`
 * with the holder's LockInfo, a generation and a lease. The registry has no compare-and-swap, so
 * a write is verified by reading it back; serialising lockers inside one process is the
 * coordinator's job above this layer (W1).
 */

export type LockStatus =
  | { state: "unlocked"; digest: string | null }
  | {
      state: "locked";
      info: LockInfo;
      generation: number;
      /** `holder_id` of the generation annotation ("" for a legacy lock without one). */
      holderId: string;
      /** When the lease ends (ms since the epoch), or null for a lock without a lease. */
      leaseExpiresAt: number | null;
      digest: string;
    }
  /** The lock tag holds something unparseable; `info` names an unknown holder whose ID is the digest. */
  | { state: "corrupt"; info: LockInfo; reason: string; digest: string }
  /** Answer to a conditional read whose digest still matches. */
  | { state: "unchanged"; digest: string };

/** A lock status with content: every answer but a conditional read's "unchanged". */
export type LockRead = Exclude<LockStatus, { state: "unchanged" }>;

/**
 * The lock as the caller read it a moment ago, with nothing written through this process since
 * (the coordinator's verified read, in the workspace's turn): used instead of reading the tag
 * again. It is as good as a read of our own: the registry has no compare-and-swap either way, and
 * a change that lands in between is caught the same way (the verify after a write; a delete by
 * digest that never removes a newer lock).
 */
export interface CurrentLockOption {
  current?: LockRead | undefined;
}

function corruptHolder(digest: string, reason: string, stateTag: string): LockInfo {
  return { ...emptyLockInfo(), id: digest, who: "unknown", info: reason, path: stateTag };
}

function statusFrom(
  parsed: ReturnType<typeof parseLockManifest>,
  digest: string,
  tags: WorkspaceTags,
): Exclude<LockStatus, { state: "unchanged" }> {
  switch (parsed.kind) {
    case "free":
      return { state: "unlocked", digest };
    case "corrupt":
      return {
        state: "corrupt",
        info: corruptHolder(digest, parsed.reason, tags.state),
        reason: parsed.reason,
        digest,
      };
    case "held": {
      const g = parsed.generation;
      return {
        state: "locked",
        info: parsed.info,
        generation: g ? Number(g.generation) : 0,
        holderId: g?.holderId ?? "",
        leaseExpiresAt: g && g.leaseExpiryNs > 0n ? unixNanoToMs(g.leaseExpiryNs) : null,
        digest,
      };
    }
  }
}

/** One GET of the lock tag (conditional when `ifNoneMatch` is given). */
export async function readLock(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: (CallOptions & { ifNoneMatch?: string | undefined }) | undefined,
): Promise<LockStatus> {
  const fetched = await ctx.target.fetchManifest(tags.locked, opts);
  if (fetched === null) return { state: "unlocked", digest: null };
  if (fetched.kind === "unchanged") return { state: "unchanged", digest: fetched.digest };
  const digest = fetched.descriptor.digest;
  return statusFrom(parseLockManifest(fetched.bytes, `lock at tag ${tags.locked}`, tags.state), digest, tags);
}

function generationOf(status: LockStatus): bigint {
  return status.state === "locked" ? BigInt(status.generation) : 0n;
}

function isStale(ctx: CoreContext, status: LockStatus & { state: "locked" }): boolean {
  return ctx.cfg.lockTTL > 0 && status.leaseExpiresAt !== null && ctx.cfg.now() > status.leaseExpiresAt;
}

/** The holder a refusal names, from a status read of a held (or unreadable) lock. */
export function holderOf(status: Extract<LockStatus, { state: "locked" | "corrupt" }>): LockHolder {
  return status.state === "corrupt"
    ? { info: status.info, generation: 0, leaseExpiresAt: null, corrupt: true }
    : {
        info: status.info,
        generation: status.generation,
        leaseExpiresAt: status.leaseExpiresAt,
        corrupt: false,
      };
}

function lockedError(tags: WorkspaceTags, status: LockStatus, suffix = ""): LockError {
  if (status.state === "locked" || status.state === "corrupt") {
    return lockHeldError(tags.name, tags.locked, holderOf(status), suffix);
  }
  // Verified free again right after our write: someone removed our lock meanwhile.
  return new LockError(`workspace ${JSON.stringify(tags.name)} is locked${suffix}`, emptyLockInfo());
}

export type HeldLockStatus = Extract<LockStatus, { state: "locked" }>;

export interface AcquireOptions extends CallOptions, CurrentLockOption {}

/**
 * Takes the lock for `info.id`. Steady state: GET lock tag, PUT lock manifest, GET to verify
 * (3 requests; 2 with `current`). Locking again with the ID that holds it succeeds (clients retry
 * lost answers).
 */
export async function acquireLock(
  ctx: CoreContext,
  tags: WorkspaceTags,
  info: LockInfo,
  opts: AcquireOptions | undefined,
): Promise<HeldLockStatus> {
  if (!info || typeof info.id !== "string" || info.id === "") {
    throw new InvalidArgumentError("lock info needs a non-empty ID");
  }
  const call = callOptionsOf(opts);
  const current = opts?.current ?? (await readLock(ctx, tags, call));
  if (current.state === "corrupt") throw lockedError(tags, current);
  let base = generationOf(current);
  if (current.state === "locked") {
    if (current.info.id === info.id) {
      // Our own lock again (a retried request): renew the lease rather than let it run out.
      if (ctx.cfg.lockTTL <= 0) return current;
      base = BigInt(current.generation) - 1n;
    } else if (!isStale(ctx, current)) {
      throw lockedError(tags, current);
    } else {
      ctx.logger.info("clearing a stale lock", {
        workspace: tags.name,
        holder: current.info.id,
        leaseExpiredAt: current.leaseExpiresAt,
      });
      await removeLock(ctx, tags, current.digest, call);
    }
  }
  const generation: LockGeneration = {
    generation: base > 0n ? base + 1n : 1n,
    leaseExpiryNs: ctx.cfg.lockTTL > 0 ? msToUnixNano(ctx.cfg.now() + ctx.cfg.lockTTL) : 0n,
    holderId: info.id,
  };
  const ours: LockInfo = { ...info, path: tags.state };
  await ctx.ensureEmptyBlob(call);
  const bytes = packLockManifest({ workspace: tags.name, info: ours, generation, nowMs: ctx.cfg.now() });
  const desc = await ctx.target.pushManifest(tags.locked, bytes, MEDIA_TYPE_OCI_MANIFEST, call);

  let check: LockStatus;
  try {
    check = await readLock(ctx, tags, call);
  } catch (err) {
    // We cannot tell whether we hold it: take our manifest back rather than leave a lock nobody
    // knows. Not with the caller's signal: it may be the reason the read failed.
    await removeLock(ctx, tags, desc.digest, undefined).catch(() => {});
    throw new UnavailableError(
      `could not verify the lock just written at tag ${tags.locked}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  // ghoten's rule: our generation and our holder_id, or someone else wrote after us.
  if (
    check.state === "locked" &&
    check.info.id === info.id &&
    check.holderId === info.id &&
    BigInt(check.generation) === generation.generation
  ) {
    return check;
  }
  throw lockedError(tags, check, " (lost the race for the lock)");
}

export interface UnlockOptions extends CallOptions, CurrentLockOption {
  /** Remove the lock whoever holds it. */
  force?: boolean | undefined;
}

/**
 * Releases the lock held by `id`. A lock that is already gone is fine (B7). Steady state: GET the
 * lock tag and DELETE its digest (2 requests; 1 with `current`); the digest read is the one
 * deleted, so a newer holder's lock is never removed by accident.
 */
export async function releaseLock(
  ctx: CoreContext,
  tags: WorkspaceTags,
  id: string,
  opts: UnlockOptions | undefined,
): Promise<void> {
  const call = callOptionsOf(opts);
  const current = opts?.current ?? (await readLock(ctx, tags, call));
  if (current.state === "unlocked" || current.state === "unchanged") return;
  const holderId = current.info.id;
  if (!opts?.force && id !== holderId) {
    throw lockIdMismatchError(tags.name, holderOf(current), id);
  }
  await removeLock(ctx, tags, current.digest, call);
}

/** Only what the storage layer takes, not this layer's own options. */
function callOptionsOf(opts: CallOptions | undefined): CallOptions {
  return { signal: opts?.signal, deadline: opts?.deadline };
}

/**
 * Deletes a lock manifest by digest. On a registry that refuses deletes (GHCR answers 405), points
 * the lock tag at the "unlocked" sentinel instead, as ghoten does (§4.3).
 */
async function removeLock(
  ctx: CoreContext,
  tags: WorkspaceTags,
  digest: string,
  opts: CallOptions | undefined,
) {
  try {
    await ctx.target.deleteManifest(digest, { ...opts, tagHint: tags.locked });
    return;
  } catch (err) {
    if (err instanceof NotFoundError) return;
    if (!(err instanceof UnimplementedError)) throw err;
  }
  let sentinel = await ctx.target.fetchManifest(tags.unlocked, opts);
  if (sentinel === null || sentinel.kind !== "manifest") {
    await ctx.ensureEmptyBlob(opts);
    const bytes = packUnlockedSentinel(tags.name, ctx.cfg.now());
    const desc = await ctx.target.pushManifest(tags.unlocked, bytes, MEDIA_TYPE_OCI_MANIFEST, opts);
    sentinel = { kind: "manifest", descriptor: desc, bytes };
  }
  await ctx.target.pushManifest(tags.locked, sentinel.bytes, MEDIA_TYPE_OCI_MANIFEST, opts);
}
