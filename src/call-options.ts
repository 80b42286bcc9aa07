/**
 * What every operation of every layer takes, from an RPC handler down to a registry request: so
 * it lives here, below them all, rather than in any one of them.
 */

/** Per-call options: every operation can be cancelled, and retries never outlive `deadline`. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Absolute deadline, ms since the epoch (Date.now() scale). */
  deadline?: number | undefined;
}
