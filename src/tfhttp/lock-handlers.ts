import { lockInfoToGoJson } from "../oras/index.ts";
import type { HandlerContext } from "./handler-context.ts";
import { isForceUnlockBody, parseLockBody } from "./lock-body.ts";
import { readLimitedBody } from "./request-body.ts";
import { jsonReply, type Reply } from "./responses.ts";

/** A LockInfo is a few hundred bytes; this leaves room for a long `Info` and nothing more. */
export const LOCK_BODY_LIMIT = 64 * 1024;

/** Default of `--http-lock-wait`. */
export const DEFAULT_HTTP_LOCK_WAIT_MS = 5000;
/** Held LOCK requests stay below the 60 s idle timeout common to proxies and load balancers. */
export const MAX_HTTP_LOCK_WAIT_MS = 30_000;

/**
 * How OpenTofu and Terraform retry a refused lock (statemgr.LockWithContext, with the same LockInfo
 * and so the same ID, until `-lock-timeout`): 1 s after the first refusal, doubling to 16 s.
 */
export const TOFU_LOCK_RETRY = {
  delayMs: (refusals: number) => 1000 * 2 ** Math.min(Math.max(refusals - 1, 0), 4),
};

/**
 * LOCK (or POST): 200 with the stored LockInfo when taken or already held by the same ID (the CLI
 * retries lost answers; with a lease, that renews it); a LockError with the holder becomes 423.
 * A held lock is waited for in the workspace's line, with the RPC callers, up to `lockWaitMs`
 * before the 423; the CLI then retries on its own backoff (`-lock-timeout`), and its lock ID
 * keeps its place in line meanwhile, so it is served in the order it first arrived.
 */
export async function handleLock(c: HandlerContext): Promise<Reply> {
  const info = parseLockBody(await readLimitedBody(c.req, LOCK_BODY_LIMIT, "lock info"), "lock");
  const result = await c.coordinator.lock(c.workspace, info, {
    signal: c.signal,
    waitMs: c.lockWaitMs,
    retry: TOFU_LOCK_RETRY,
  });
  return { ...jsonReply(200, lockInfoToGoJson(result.info)), facts: { lockId: result.info.id } };
}

/**
 * UNLOCK (or DELETE): releases the lock when the body's ID is the holder's, and answers 200 when
 * the lock is already free. A force-unlock body (only `ID` set) is held to the same rule: it names
 * the lock the user read from an error, and releasing a different holder's lock would break a
 * lock that nobody asked to break, so a mismatch is a 409 with the holder.
 */
export async function handleUnlock(c: HandlerContext): Promise<Reply> {
  const info = parseLockBody(await readLimitedBody(c.req, LOCK_BODY_LIMIT, "lock info"), "unlock");
  const released = await c.coordinator.unlock(c.workspace, info.id, { signal: c.signal });
  if (isForceUnlockBody(info)) {
    c.logger.info("force-unlock over the http backend", {
      workspace: c.workspace,
      lockId: info.id,
      released: released !== null,
    });
  }
  const facts = { lockId: info.id };
  return released ? { ...jsonReply(200, lockInfoToGoJson(released)), facts } : { status: 200, facts };
}
