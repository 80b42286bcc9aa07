import type { LockError, LockInfo } from "../oras/index.ts";
import type { LockResult, LockRetry } from "./types.ts";

/** One Lock call held open until the lock frees or its wait ends. */
export interface Call {
  readonly signal: AbortSignal | undefined;
  /** When its wait ends (Date.now() scale). */
  readonly until: number;
  readonly startedAt: number;
  /** Its lock attempt is running: timeouts and cancels are settled by the attempt. */
  attempting: boolean;
  resolve(result: LockResult): void;
  reject(err: unknown): void;
  /** Clears its timer and abort listener. */
  cleanup(): void;
}

/**
 * A place in a workspace's line. A caller that waits has a `call`; a caller that retries on its
 * own (`retry`) keeps its ticket between its calls, "parked" with no call, until it is due back
 * (plus a grace) or comes back with the same lock ID.
 */
export interface Ticket {
  readonly workspace: string;
  readonly id: string;
  /** The LockInfo of its latest call. */
  info: LockInfo;
  readonly retry: LockRetry | undefined;
  /** The wait of its latest call: also the longest the lock is held for it while it is away. */
  holdMs: number;
  call: Call | null;
  /** Its calls that ended refused (the caller's retry delay grows with them). */
  refusals: number;
  /** The last refusal, for the error at the end of a wait. */
  lastError: LockError | null;
  /** While parked: when its next call is due, and when its place is given up. */
  dueAt: number;
  expiresAt: number;
  expiry: NodeJS.Timeout | undefined;
  /** Its reference on the workspace's poller, which reports foreign unlocks. */
  releasePoller: () => void;
}

/** The tickets of one workspace, in arrival order. */
export class Line {
  readonly tickets: Ticket[] = [];
  /** Tickets of callers that keep their place, by lock ID. */
  readonly byId = new Map<string, Ticket>();
  /** Tickets with a call held open. */
  present = 0;
  /** The absent ticket a freed lock is being held for, if any. */
  reserved: Ticket | null = null;

  get parked(): number {
    return this.tickets.length - this.present;
  }

  add(t: Ticket): void {
    this.tickets.push(t);
    if (t.retry !== undefined) this.byId.set(t.id, t);
    if (t.call !== null) this.present++;
  }

  /** Removes `t`; false when it was not in the line. */
  remove(t: Ticket): boolean {
    const at = this.tickets.indexOf(t);
    if (at < 0) return false;
    this.tickets.splice(at, 1);
    if (this.byId.get(t.id) === t) this.byId.delete(t.id);
    if (t.call !== null) this.present--;
    if (this.reserved === t) this.reserved = null;
    return true;
  }
}
