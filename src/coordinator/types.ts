import type { CallOptions } from "../oci/target.ts";
import type {
  LockInfo,
  LockStatus,
  PutResult,
  StatePayload,
  StateReader,
  VersionInfo,
  WorkspaceInfo,
} from "../oras/index.ts";

/**
 * The coordinator's surface, used by every wire adapter (rpc, tfhttp). It serialises lock, unlock,
 * put, delete and restore per workspace inside the process, fences writes on a locked workspace
 * with the holder's lock ID, and fans lock changes out to watchers. Errors are the domain errors
 * of src/errors.ts (LockError for a held lock, with the holder's LockInfo).
 */

export interface WriteOptions extends CallOptions {
  /** The caller's lock ID; required (and must match) while the workspace is locked. */
  lockId?: string | undefined;
}

export interface LockOptions extends CallOptions {
  /** Hold the call up to this many ms until the lock frees; 0 = fail at once. */
  waitMs?: number | undefined;
}

export interface LockResult {
  id: string;
  generation: number;
  /** Lease end (ms since the epoch) or null without a lease. */
  leaseExpiresAt: number | null;
  info: LockInfo;
}

export type LockEvent =
  | {
      kind: "snapshot" | "locked" | "unlocked";
      workspace: string;
      /** Set when locked. */
      info: LockInfo | undefined;
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

export interface Coordinator {
  getState(workspace: string, opts?: CallOptions): Promise<StatePayload | null>;
  openRead(workspace: string, opts?: CallOptions): Promise<StateReader | null>;
  putState(workspace: string, data: Uint8Array, opts?: WriteOptions): Promise<PutResult>;
  putStateStream(
    workspace: string,
    stream: AsyncIterable<Uint8Array>,
    opts?: WriteOptions,
  ): Promise<PutResult>;
  deleteState(workspace: string, opts?: WriteOptions): Promise<void>;

  /** LockError (holder's LockInfo) when held by another ID after any wait. Same ID again succeeds. */
  lock(workspace: string, info: LockInfo, opts?: LockOptions): Promise<LockResult>;
  /** Returns the LockInfo that was released, or null when it was already free. */
  unlock(workspace: string, id: string, opts?: CallOptions & { force?: boolean }): Promise<LockInfo | null>;
  getLock(workspace: string, opts?: CallOptions): Promise<LockStatus>;
  /**
   * Lock changes for one workspace, or every workspace when `workspace` is undefined. Starts with
   * the current status (snapshot events, then snapshot_complete), then one event per change. Ends
   * when `signal` aborts or the coordinator closes. Slow consumers get coalesced updates.
   */
  watchLock(workspace: string | undefined, signal: AbortSignal): AsyncIterable<LockEvent>;

  listVersions(workspace: string, opts?: CallOptions): Promise<VersionInfo[]>;
  getVersion(workspace: string, version: number, opts?: CallOptions): Promise<StatePayload>;
  restoreVersion(workspace: string, version: number, opts?: WriteOptions): Promise<PutResult>;

  listWorkspaces(opts?: CallOptions & { details?: boolean }): Promise<WorkspaceSummary[]>;
  getWorkspace(workspace: string, opts?: CallOptions): Promise<WorkspaceSummary>;
  createWorkspace(workspace: string, opts?: CallOptions): Promise<WorkspaceSummary>;
  deleteWorkspace(workspace: string, opts?: CallOptions & { force?: boolean }): Promise<void>;

  /** Registry (or layout) reachable. */
  ready(opts?: CallOptions): Promise<void>;
  /** Ends watch streams, stops pollers, awaits retention, closes the backend. */
  close(): Promise<void>;
}
