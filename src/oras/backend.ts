import { InvalidArgumentError } from "../errors.ts";
import { noopLogger } from "../log.ts";
import type { CredentialsOption } from "../oci/credentials.ts";
import { createLayoutTarget } from "../oci/layout.ts";
import { createRemoteTarget } from "../oci/remote.ts";
import type { CallOptions, Target } from "../oci/target.ts";
import { type BackendConfig, resolveConfig } from "./config.ts";
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

export const LAYOUT_PREFIX = "oci-layout:";

/** Builds the storage target a repository string names. */
export function targetFor(cfg: BackendConfig): Target {
  if (cfg.target) return cfg.target;
  const repo = cfg.repository.trim();
  if (repo.startsWith(LAYOUT_PREFIX)) {
    const dir = repo.slice(LAYOUT_PREFIX.length);
    if (dir === "") throw new InvalidArgumentError(`repository ${JSON.stringify(repo)} names no directory`);
    return createLayoutTarget({ dir, ...(cfg.logger ? { logger: cfg.logger } : {}) });
  }
  // Default: Docker's config.json (auths, credsStore, credHelpers), as docker and oras do.
  const credentials: CredentialsOption =
    cfg.credentialFunc ??
    (cfg.username !== undefined || cfg.password !== undefined
      ? { username: cfg.username ?? "", password: cfg.password ?? "" }
      : { dockerConfig: undefined });
  return createRemoteTarget({
    repository: repo,
    plainHTTP: cfg.plainHTTP ?? false,
    insecureSkipVerify: cfg.insecure ?? false,
    ...(cfg.caFile ? { caFile: cfg.caFile } : {}),
    credentials,
    ...(cfg.userAgent ? { userAgent: cfg.userAgent } : {}),
    retry: {
      ...(cfg.retry?.maxAttempts !== undefined ? { maxAttempts: cfg.retry.maxAttempts } : {}),
      ...(cfg.retry?.initialBackoff !== undefined ? { initialBackoffMs: cfg.retry.initialBackoff } : {}),
      ...(cfg.retry?.maxBackoff !== undefined ? { maxBackoffMs: cfg.retry.maxBackoff } : {}),
      ...(cfg.retry?.backoffMultiplier !== undefined ? { multiplier: cfg.retry.backoffMultiplier } : {}),
    },
    rateLimit: cfg.rateLimit ?? 0,
    rateBurst: cfg.rateBurst ?? 0,
    ...(cfg.githubApiUrl ? { githubApiUrl: cfg.githubApiUrl } : {}),
    ...(cfg.logger ? { logger: cfg.logger } : {}),
  });
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
  const target = targetFor(config);
  const ctx = new CoreContext(target, cfg, logger);
  const managers = new Map<string, StateManager>();
  return {
    target,
    workspaces: (opts) => listWorkspaces(ctx, opts),
    createWorkspace: (name, opts) => createWorkspace(ctx, name, opts),
    deleteWorkspace: (name, force = false, opts) => deleteWorkspace(ctx, name, force, opts),
    describeWorkspace: (name, opts) => describeWorkspace(ctx, name, opts),
    stateMgr(workspace) {
      let m = managers.get(workspace);
      if (!m) {
        m = new StateManager(ctx, workspace);
        managers.set(workspace, m);
      }
      return m;
    },
    waitForRetention: () => waitForRetention(ctx),
    async close() {
      await waitForRetention(ctx);
      await target.close();
    },
  };
}
