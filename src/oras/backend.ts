import type { CallOptions } from "../call-options.ts";
import { noopLogger } from "../log.ts";
import { openTarget } from "../oci/open-target.ts";
import type { Target } from "../oci/target.ts";
import { type BackendConfig, type RepositorySettings, resolveConfig, targetOptions } from "./config.ts";
import { CoreContext } from "./core-context.ts";
import { StateManager } from "./state-manager.ts";
import { waitForRetention } from "./versions.ts";
import {
  createWorkspace,
  type DeleteWorkspaceOptions,
  deleteWorkspace,
  describeWorkspace,
  listWorkspaces,
  type WorkspaceInfo,
} from "./workspaces.ts";

export { LAYOUT_PREFIX } from "../oci/open-target.ts";

/** A ready target wins (the service builds one from its Config); else the repository is opened. */
function storageTarget(config: BackendConfig): Target {
  if ("target" in config && config.target) return config.target;
  return openTarget(targetOptions(config as RepositorySettings, config.logger));
}

/** ghoten's StateBackend, TypeScript-style, plus workspace creation and description. */
export interface Backend {
  readonly target: Target;
  /** Every workspace name, sorted; `default` is always there. */
  workspaces(opts?: CallOptions): Promise<string[]>;
  /** Makes a workspace visible at once; AlreadyExistsError when it exists. */
  createWorkspace(name: string, opts?: CallOptions): Promise<void>;
  /**
   * Deletes a workspace and everything of it; without `force`, refuses one locked by anyone but
   * `opts.lockId` and one whose state still manages resources (or cannot be read for them).
   */
  deleteWorkspace(name: string, force?: boolean, opts?: DeleteWorkspaceOptions): Promise<void>;
  describeWorkspace(name: string, opts?: CallOptions): Promise<WorkspaceInfo>;
  /** The state manager of a workspace (validates the name; touches no registry). */
  stateMgr(workspace: string): StateManager;
  /** Resolves when no background retention is pending. */
  waitForRetention(): Promise<void>;
  /** Awaits retention, then releases connections. */
  close(): Promise<void>;
}

export function createBackend(config: BackendConfig): Backend {
  const cfg = resolveConfig(config);
  const logger = config.logger ?? noopLogger;
  const target = storageTarget(config);
  const ctx = new CoreContext(target, cfg, logger);
  const managers = new Map<string, StateManager>();
  /** A workspace's manager: its name is checked (and its tags derived) once, here, on first use. */
  const stateMgr = (workspace: string): StateManager => {
    let m = managers.get(workspace);
    if (!m) {
      m = new StateManager(ctx, workspace);
      managers.set(workspace, m);
    }
    return m;
  };
  return {
    target,
    workspaces: (opts) => listWorkspaces(ctx, opts),
    // async: a bad name is a rejection here, as every other failure of these calls.
    createWorkspace: async (name, opts) => createWorkspace(ctx, stateMgr(name).tags, opts),
    deleteWorkspace: async (name, force = false, opts) =>
      deleteWorkspace(ctx, stateMgr(name).tags, force, opts),
    describeWorkspace: async (name, opts) => describeWorkspace(ctx, stateMgr(name).tags, opts),
    stateMgr,
    waitForRetention: () => waitForRetention(ctx),
    async close() {
      await waitForRetention(ctx);
      await target.close();
    },
  };
}
