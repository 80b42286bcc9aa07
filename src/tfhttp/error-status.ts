import { AUTH_REALM, type ErrorCode, isTfstateError } from "../errors.ts";
import { LockError, lockInfoToGoJson } from "../oras/index.ts";

/**
 * The one place domain errors become HTTP statuses for the Terraform http backend protocol.
 *
 * A held lock is 423 on the lock route (what OpenTofu's test server and the CLI expect) and 409 on
 * writes and unlocks (GitLab's convention); either way the body is the holder's LockInfo in Go's
 * casing, which the CLI parses to show who holds the lock. Every other error is `{"error": "..."}`.
 */
export type LockConflictStatus = 409 | 423;

export interface ErrorReply {
  status: number;
  body: string;
  headers: Record<string, string>;
  /** Server-side failures are logged as errors, client mistakes at debug. */
  serverFault: boolean;
}

const STATUS: Record<ErrorCode, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 409,
  aborted: 409,
  resource_exhausted: 413,
  data_loss: 500,
  internal: 500,
  unimplemented: 501,
  unavailable: 503,
  // The client went away or the server is shutting down: nobody waits for a better answer.
  canceled: 503,
  deadline_exceeded: 504,
};

export function errorBody(message: string): string {
  return JSON.stringify({ error: message });
}

export function errorReply(
  err: unknown,
  lockConflict: LockConflictStatus,
  opts: { hideLockId?: boolean } = {},
): ErrorReply {
  if (err instanceof LockError) {
    // Without a holder (a lock ID that holds nothing) there is no LockInfo to show; say why instead.
    // The ID is the key to the workspace's writes: only a caller that may lock it is shown it.
    const holder = opts.hideLockId ? { ...err.holder, id: "" } : err.holder;
    const body = err.holder.id !== "" ? lockInfoToGoJson(holder) : errorBody(err.message);
    return { status: lockConflict, body, headers: {}, serverFault: false };
  }
  if (!isTfstateError(err)) {
    // Unknown errors may carry anything in their message; the log has it, the client gets no details.
    return { status: 500, body: errorBody("internal server error"), headers: {}, serverFault: true };
  }
  const status = STATUS[err.code];
  const headers: Record<string, string> = {};
  // The CLI sends Basic credentials (`username`/`password` in the backend block); other clients
  // may send the same token or JWT as a Bearer token.
  if (status === 401)
    headers["www-authenticate"] =
      `Basic realm="${AUTH_REALM}", charset="UTF-8", Bearer realm="${AUTH_REALM}"`;
  const message = err.code === "data_loss" ? `data loss: ${err.message}` : err.message;
  // A client that went away is nobody's fault worth an error line.
  return { status, body: errorBody(message), headers, serverFault: status >= 500 && err.code !== "canceled" };
}
