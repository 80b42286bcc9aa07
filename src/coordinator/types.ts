import type { CallOptions } from "../call-options.ts";
import type {
  LockInfo,
  PutResult,
  StateHead,
  StatePayload,
  StateReader,
  VersionInfo,
  WorkspaceInfo,
} from "../oras/index.ts";

/**
 * The coordinator's surface, used by every wire adapter (rpc, tfhttp). It serialises lock, unlock,
 * put, delete and restore per workspace inside the process (a put's body is received and stored
 * as a blob before its turn; only its commit is serialised), fences writes on a locked workspace
 * with the holder's lock ID, and fans lock changes out to watchers. Errors are the domain errors
 * of src/errors.ts (LockError for a held lock, with the holder's LockInfo).
 */

export interface WriteOptions extends CallOptions {
  /**
   * The caller's lock ID. Required, and must be the holder's, while the workspace is locked; a
   * write that carries one while the workspace is not locked with it is refused too (the caller
   * lost its lock, so its view of the state is stale).
   */
  lockId?: string | undefined;
}

export interface LockOptions extends CallOptions {
  /**
   * Hold the call up to this many ms until the lock frees, then take it; 0 = fail at once. Capped
   * by the coordinator's `maxLockWaitMs` and by `deadline`.
   */
  waitMs?: number | undefined;
  /**
   * The caller retries a refused Lock on its own with the same lock ID, after these delays (an
   * http backend client). With a wait, its place in line is then kept between its calls, until it
   * is due back plus a grace, and a freed lock may be held for it briefly (see LockService).
   */
  retry?: LockRetry | undefined;
}

/** How a caller that retries on its own paces its Lock calls. */
export interface LockRetry {
  /** The pause before its next call, after its `refusals`-th refused call (1, 2, …). */
  delayMs(refusals: number): number;
}

export interface UnlockOptions extends CallOptions {
  /** Release the lock whoever holds it. */
  force?: boolean | undefined;
}

export interface DeleteWorkspaceOptions extends CallOptions {
  /** The lock ID the caller holds, if it locked the workspace before deleting it. */
  lockId?: string | undefined;
  /** Delete even when someone else holds the lock, or the state still manages resources. */
  force?: boolean | undefined;
}

/** A lock as stored in the registry. */
export interface HeldLock {
  info: LockInfo;
  /** The generation recorded with the lock; 0 for a tool that records none. */
  generation: number;
  /** Lease end (ms since the epoch) or null without a lease. */
  leaseExpiresAt: number | null;
  /** The lock tag holds something unreadable; `info.id` is its digest (force-unlock with it). */
  corrupt: boolean;
}

export type LockState = ({ state: "locked" } & HeldLock) | { state: "unlocked" };

export interface LockResult {
  id: string;
  generation: number;
  /** Lease end (ms since the epoch) or null without a lease. */
  leaseExpiresAt: number | null;
  /** The lock as stored (with the assigned ID, `created` and `path`). */
  info: LockInfo;
}

export type LockEvent =
  | {
      kind: "snapshot" | "locked" | "unlocked";
      workspace: string;
      /**
       * The holder: for `locked`, and for a `snapshot` of a locked workspace. For `unlocked`, the
       * holder that released the lock, when known.
       */
      info: LockInfo | undefined;
      /** The lock's generation; for `unlocked`, that of the released lock; 0 for an unlocked snapshot. */
      generation: number;
      /** ms since the epoch when the change was observed. */
      observedAt: number;
    }
  /** Marks the end of the initial snapshot(s) of a stream. */
  | { kind: "snapshot_complete"; observedAt: number };

export interface WorkspaceSummary extends WorkspaceInfo {
  /** The holder when locked. */
  lock: LockInfo | undefined;
}

/** Live figures, for health output and tests. */
export interface CoordinatorStats {
  /** Open WatchLock streams. */
  watchers: number;
  /** Registry pollers running (one per watched workspace, plus one for all-workspace watchers). */
  pollers: number;
  /** Lock calls waiting for a held lock. */
  lockWaiters: number;
  /** Serialised operations running or queued, over all workspaces. */
  queuedOperations: number;
}

/**
 * One watch's events, read either as an async iterator or, by a consumer serving many watches at
 * once, without a promise per event: `take()` until it returns undefined, then `wait()`.
 */
export interface LockWatch extends AsyncIterableIterator<LockEvent> {
  /** The next queued event, or undefined when none is queued. */
  take(): LockEvent | undefined;
  /**
   * Calls `ready` once, when an event is queued or the watch ends: synchronously from inside the
   * change that caused it, so `ready` must not throw or block. At once when either is the case already.
   */
  wait(ready: () => void): void;
  /** True once the watch has ended (after its queue is drained, `take()` returns undefined for good). */
  readonly ended: boolean;
  /** Why the watch ended, when it failed (the initial status could not be read); else undefined. */
  readonly failure: unknown;
  /** Ends the watch and frees what it holds. */
  close(): void;
}

export interface Coordinator {
  getState(workspace: string, opts?: CallOptions): Promise<StatePayload | null>;
  /** The state's manifest facts without its content (null when there is no state). */
  stateHead(workspace: string, opts?: CallOptions): Promise<StateHead | null>;
  openRead(workspace: string, opts?: CallOptions): Promise<StateReader | null>;
  /**
   * Writes a new state. The body is checked and pushed as a blob before the write takes its turn on
   * the workspace; only the fencing check and the tag moves run in the turn. A refused write (held
   * lock, canceled while queued) leaves its blob unreferenced and the old state current.
   */
  putState(workspace: string, data: Uint8Array, opts?: WriteOptions): Promise<PutResult>;
  /**
   * Like putState, from a stream read once. The stream is read to its end before the write takes
   * its turn (so a slow sender holds up no other operation on the workspace) and before the fencing
   * check: a write the lock refuses has still been received and its blob uploaded. Reading stops
   * when `signal` aborts or `deadline` passes, even while a chunk is awaited.
   */
  putStateStream(
    workspace: string,
    stream: AsyncIterable<Uint8Array>,
    opts?: WriteOptions,
  ): Promise<PutResult>;
  deleteState(workspace: string, opts?: WriteOptions): Promise<void>;

  /**
   * Takes the lock. An empty `info.id` gets a random UUID, an empty `info.created` the time of the
   * call; `path` is set to the state tag. LockError (holder's LockInfo) when held by another ID
   * after any wait. Locking again with the holder's ID succeeds.
   */
  lock(workspace: string, info: LockInfo, opts?: LockOptions): Promise<LockResult>;
  /**
   * Returns the LockInfo that was released, or null when it was already free. Without `force`,
   * `id` must be the holder's (LockError otherwise); InvalidArgumentError when `id` is empty and
   * `force` is not set.
   */
  unlock(workspace: string, id: string, opts?: UnlockOptions): Promise<LockInfo | null>;
  getLock(workspace: string, opts?: CallOptions): Promise<LockState>;
  /**
   * Lock changes for one workspace, or every workspace when `workspace` is undefined. Starts with
   * the current status (one snapshot for a single workspace; one per locked workspace for all),
   * then snapshot_complete, then one event per change. Ends (the iterator finishes) when `signal`
   * aborts, the consumer stops iterating or closes the watch, or the coordinator closes. Slow
   * consumers get coalesced updates. A bad workspace name throws InvalidArgumentError at once; the
   * first `next()` rejects (and `failure` is set) when the initial status cannot be read. A watch
   * that ends without its consumer ending it was ended by close() (the service is shutting down).
   */
  watchLock(workspace: string | undefined, signal?: AbortSignal): LockWatch;

  listVersions(workspace: string, opts?: CallOptions): Promise<VersionInfo[]>;
  getVersion(workspace: string, version: number, opts?: CallOptions): Promise<StatePayload>;
  restoreVersion(workspace: string, version: number, opts?: WriteOptions): Promise<PutResult>;

  /** Every workspace name, sorted (one tag listing; `default` is always there). */
  listWorkspaceNames(opts?: CallOptions): Promise<string[]>;
  /** Details of the named workspaces (for one page of names), in the given order. */
  describeWorkspaces(names: readonly string[], opts?: CallOptions): Promise<WorkspaceSummary[]>;
  /** Every workspace with details: listWorkspaceNames then describeWorkspaces. */
  listWorkspaces(opts?: CallOptions): Promise<WorkspaceSummary[]>;
  /** NotFoundError when the workspace does not exist (`default` always exists). */
  getWorkspace(workspace: string, opts?: CallOptions): Promise<WorkspaceSummary>;
  /** AlreadyExistsError when it exists. */
  createWorkspace(workspace: string, opts?: CallOptions): Promise<WorkspaceSummary>;
  /**
   * Deletes the workspace with its state, history and lock. Without `force`: LockError when locked
   * by someone other than `lockId`; FailedPreconditionError naming the count when its state still
   * manages resources, or saying why its state cannot be read for them (encrypted, not JSON).
   */
  deleteWorkspace(workspace: string, opts?: DeleteWorkspaceOptions): Promise<void>;

  /**
   * Writes `default`'s empty state manifest when the store has none (true when written), in the
   * workspace's queue, so no write of `default` through this service can interleave.
   */
  ensureDefaultWorkspace(opts?: CallOptions): Promise<boolean>;
  /** Registry (or layout) reachable. */
  ready(opts?: CallOptions): Promise<void>;
  stats(): CoordinatorStats;
  /**
   * Ends watch streams, stops pollers, rejects lock waiters (UnavailableError), lets running
   * operations finish, awaits retention, closes the backend. Later calls fail with UnavailableError.
   */
  close(): Promise<void>;
}
