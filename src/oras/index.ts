/**
 * oci-tfstate/core: Terraform/OpenTofu state in an OCI repository, in the on-registry format of
 * ghoten-oras-backend (docs/oras-wire-format.md).
 */
export { type Backend, createBackend, LAYOUT_PREFIX } from "./backend.ts";
export type {
  BackendConfig,
  CoreSettings,
  Credential,
  CredentialFunc,
  RepositorySettings,
  RetryConfig,
  TargetSettings,
} from "./config.ts";
export {
  holderName,
  LockError,
  type LockHolder,
  lockHeldError,
  lockIdMismatchError,
} from "./lock-error.ts";
export { emptyLockInfo, type LockInfo, lockInfoFromGoJson, lockInfoToGoJson } from "./lock-info.ts";
export type {
  AcquireOptions,
  CurrentLockOption,
  HeldLockStatus,
  LockRead,
  LockStatus,
  UnlockOptions,
} from "./locking.ts";
export type { StateHead, StateManager, StateReader } from "./state-manager.ts";
export type { StatePayload } from "./state-read.ts";
export type { PreparedState, PutResult, StateInput } from "./state-write.ts";
export type { VersionInfo } from "./versions.ts";
export { DEFAULT_WORKSPACE } from "./wire-format.ts";
export {
  isHashedWorkspaceTag,
  MAX_WORKSPACE_NAME_BYTES,
  validateWorkspaceName,
  workspaceTag,
} from "./workspace-names.ts";
export type { WorkspaceInfo } from "./workspaces.ts";
