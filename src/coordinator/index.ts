/**
 * The coordinator: the one place that serialises writes per workspace, fences them with the lock
 * holder's ID, and pushes lock changes to watchers. Wire adapters (rpc, tfhttp) call only this.
 */
export {
  type CoordinatorOptions,
  createCoordinator,
  DEFAULT_MAX_LOCK_WAIT_MS,
  DEFAULT_WATCH_POLL_INTERVAL_MS,
} from "./coordinator.ts";
export type {
  Coordinator,
  CoordinatorStats,
  DeleteWorkspaceOptions,
  HeldLock,
  LockEvent,
  LockOptions,
  LockResult,
  LockRetry,
  LockState,
  LockWatch,
  UnlockOptions,
  WorkspaceSummary,
  WriteOptions,
} from "./types.ts";
