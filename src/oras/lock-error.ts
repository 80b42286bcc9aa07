import { FailedPreconditionError } from "../errors.ts";
import type { LockInfo } from "./lock-info.ts";

/**
 * OpenTofu's statemgr.LockError: the lock is held (by `holder`), or its state could not be read
 * consistently. `inconsistentRead` stays false for a corrupt lock: OpenTofu retries such errors
 * without sleeping, which is the busy loop of ghoten bug B6.
 */
export class LockError extends FailedPreconditionError {
  readonly holder: LockInfo;
  readonly generation: number;
  readonly inconsistentRead: boolean;
  /** When the holder's lease ends (ms since the epoch), or null without a lease. */
  readonly leaseExpiresAt: number | null;
  constructor(
    message: string,
    holder: LockInfo,
    opts: {
      generation?: number;
      inconsistentRead?: boolean;
      leaseExpiresAt?: number | null;
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.holder = holder;
    this.generation = opts.generation ?? 0;
    this.inconsistentRead = opts.inconsistentRead ?? false;
    this.leaseExpiresAt = opts.leaseExpiresAt ?? null;
  }
}

/** What a refusal knows of the lock in its way: the core's lock status and the coordinator's view both have it. */
export interface LockHolder {
  info: LockInfo;
  /** The generation recorded with the lock; 0 for a tool that records none. */
  generation: number;
  /** Lease end (ms since the epoch) or null without a lease. */
  leaseExpiresAt: number | null;
  /** The lock tag holds something unreadable: `info.info` says why, `info.id` is its digest. */
  corrupt: boolean;
}

/** Who holds a lock, as a refusal names it: `who (lock ID id)`. */
export function holderName(info: LockInfo): string {
  return `${info.who || "an unknown holder"} (lock ID ${info.id})`;
}

/**
 * The lock of workspace `workspace` (tag `lockTag`) is held by someone else: the one "lock held"
 * error of every layer. It names the holder, or for an unreadable lock how to remove it; `suffix`
 * says more (how long the caller waited, a race lost, what to do instead).
 */
export function lockHeldError(workspace: string, lockTag: string, held: LockHolder, suffix = ""): LockError {
  const ws = JSON.stringify(workspace);
  const { info } = held;
  const message = held.corrupt
    ? `workspace ${ws} is locked by an unreadable lock at tag ${lockTag} (${info.info}); ` +
      `force-unlock with ID ${info.id} removes it`
    : `workspace ${ws} is locked by ${info.who || "an unknown holder"} ` +
      `(lock ID ${info.id}${info.operation ? `, ${info.operation}` : ""})`;
  return new LockError(message + suffix, info, {
    generation: held.generation,
    leaseExpiresAt: held.leaseExpiresAt,
  });
}

/** An unlock without force whose ID is not the holder's: the one "lock ID mismatch" error. */
export function lockIdMismatchError(workspace: string, held: LockHolder, id: string): LockError {
  return new LockError(
    `lock ID mismatch: workspace ${JSON.stringify(workspace)} is locked with ID ${held.info.id}, not ${id}`,
    held.info,
    { generation: held.generation, leaseExpiresAt: held.leaseExpiresAt },
  );
}
