/**
 * What the caller may do on a workspace, from Workspace.caller_permissions: buttons the principal
 * may not use are disabled up front with the permission named. Without the field (an older server)
 * every button is offered and a 403 disables it afterwards, with the server's reason (`refusals`);
 * a 403 despite the field (the policy changed since the page loaded) does the same.
 */
import type { Workspace } from "@oci-tfstate/client/web";

export type Permission = "read" | "read-outputs" | "write" | "lock" | "force-unlock" | "admin";

/**
 * The caller's permissions on the workspace (the server expands implications), or undefined when
 * the server did not say: a workspace the caller can see always carries at least one, so an empty
 * list is a server that predates the field (or a view without it).
 */
export function permissionsOf(ws: Workspace | undefined): ReadonlySet<string> | undefined {
  const granted = ws?.callerPermissions;
  return granted === undefined || granted.length === 0 ? undefined : new Set(granted);
}

/** Why the caller may not do what needs `need`, or undefined when it may (or nobody knows yet). */
export function missing(ws: Workspace | undefined, need: Permission): string | undefined {
  const perms = permissionsOf(ws);
  if (perms === undefined || perms.has(need)) return undefined;
  return `needs the ${need} permission`;
}

/**
 * Refusals (403) the server gave this session, by workspace and action: the reason it gave. Every
 * button for the same action on the workspace (one per version row) is told at once.
 */
const refused = new Map<string, string>();
const listeners = new Set<() => void>();
const key = (workspace: string, action: string) => `${action}\u0000${workspace}`;

export const refusals = {
  get: (workspace: string, action: string) => refused.get(key(workspace, action)),
  set(workspace: string, action: string, reason: string) {
    refused.set(key(workspace, action), reason);
    for (const l of listeners) l();
  },
  subscribe(l: () => void): () => void {
    listeners.add(l);
    return () => listeners.delete(l);
  },
};
