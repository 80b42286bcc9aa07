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
