import { emptyLockInfo, holderName, LockError } from "../oras/index.ts";
import type { KnownLock } from "./lock-tracker.ts";

/**
 * Fencing (as GitLab's state API does with 409): while a workspace is locked, a write must carry
 * the holder's lock ID; and a write that carries an ID must find the workspace locked with it,
 * because a caller whose lock was force-unlocked or taken over is working from a stale state.
 */
export function assertWriteAllowed(workspace: string, lock: KnownLock, lockId: string | undefined): void {
  const ws = JSON.stringify(workspace);
  const id = lockId ?? "";
  if (lock.state === "locked") {
    if (id === lock.info.id) return;
    const holder = holderName(lock.info);
    throw new LockError(
      id === ""
        ? `workspace ${ws} is locked by ${holder}; a write must carry the holder's lock ID`
        : `workspace ${ws} is locked by ${holder}, not with lock ID ${id}`,
      lock.info,
      { generation: lock.generation },
    );
  }
  if (id !== "") {
    throw new LockError(
      `workspace ${ws} is not locked with lock ID ${id} any more (it was unlocked or force-unlocked); ` +
        "lock it again and read the state before writing",
      emptyLockInfo(),
    );
  }
}
