/**
 * What a handler shows of workspaces and lock holders, by the caller's Access (authorization.ts).
 * Without one (no identity configured, or a host that runs the handlers without the interceptor)
 * everything is shown.
 */
import type { HandlerContext } from "@connectrpc/connect";
import type { LockInfo } from "../oras/index.ts";
import { PERMISSIONS, type Permission } from "../policy/permissions.ts";
import { accessKey } from "./authorization.ts";

export interface CallerView {
  /** The workspace exists for the caller (it has some permission on it). */
  visible(workspace: string): boolean;
  /** The caller may see the lock ID of the workspace's holder (it has `lock` there). */
  lockIds(workspace: string): boolean;
  /** The caller's permissions on the workspace, in PERMISSIONS order, implications expanded. */
  permissions(workspace: string): Permission[];
}

const EVERYTHING: CallerView = {
  visible: () => true,
  lockIds: () => true,
  permissions: () => [...PERMISSIONS],
};

export function callerView(ctx: Pick<HandlerContext, "values">): CallerView {
  const access = ctx.values.get(accessKey);
  if (access === undefined) return EVERYTHING;
  return {
    visible: (ws) => access.visible(ws),
    lockIds: (ws) => access.can("lock", ws),
    permissions: (ws) => PERMISSIONS.filter((p) => access.can(p, ws)),
  };
}

/** The holder as the caller may see it. */
export function shownHolder(info: LockInfo, workspace: string, view: CallerView): LockInfo {
  return view.lockIds(workspace) ? info : { ...info, id: "" };
}
