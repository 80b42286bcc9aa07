/**
 * The policy's check for the http backend: each request's action needs one permission on its
 * workspace. A workspace the caller may not see does not exist for it (404 whether or not it does,
 * so names do not leak); one it sees without the permission is 403 naming both.
 */
import { NotFoundError, PermissionDeniedError } from "../errors.ts";
import type { Permission } from "../policy/permissions.ts";
import type { PolicySource } from "../policy/policy.ts";
import type { TerraformHttpAction, TerraformHttpAuthorize } from "./types.ts";

export const ACTION_NEEDS: Readonly<Record<TerraformHttpAction, Permission>> = {
  read: "read",
  write: "write",
  delete: "write",
  lock: "lock",
  unlock: "lock",
};

export function policyAuthorizer(policy: PolicySource): TerraformHttpAuthorize {
  return async (_req, { workspace, action, principal }) => {
    const access = policy.current.accessFor(principal);
    if (!access.visible(workspace))
      throw new NotFoundError(`workspace ${JSON.stringify(workspace)} does not exist`);
    const need = ACTION_NEEDS[action];
    if (!access.can(need, workspace)) {
      throw new PermissionDeniedError(
        `${principal.name} lacks the ${need} permission on workspace ${JSON.stringify(workspace)}`,
      );
    }
    return { showLockIds: access.can("lock", workspace) };
  };
}
