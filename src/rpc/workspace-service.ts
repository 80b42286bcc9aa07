/**
 * tfstate.v1.WorkspaceService over the coordinator. Listing pages over the names first (one tag
 * listing) and describes only the workspaces of the page, so a page costs the same however many
 * workspaces the repository holds.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError } from "../errors.ts";
import { WorkspaceView } from "../gen/tfstate/v1/workspace_pb.ts";
import type { WorkspaceService } from "../gen/tfstate/v1/workspace_service_pb.ts";
import { DEFAULT_WORKSPACE } from "../oras/index.ts";
import { callOptions } from "./call-options.ts";
import { workspaceToProto } from "./convert.ts";
import type { ServiceDeps } from "./deps.ts";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.ts";
import { callerView } from "./view.ts";

export function workspaceService(deps: ServiceDeps): ServiceImpl<typeof WorkspaceService> {
  const { coordinator, insights } = deps;
  return {
    async listWorkspaces(req, ctx) {
      const size = pageSize(req.pageSize);
      const basic = isBasic(req.view);
      const scope = `workspaces\u0000${basic ? "basic" : "full"}`;
      const after = decodePageToken(req.pageToken, scope);
      const opts = callOptions(ctx);
      const view = callerView(ctx);
      // Paged over what the caller may see: a workspace it may not does not exist for it.
      const names = (await coordinator.listWorkspaceNames(opts)).filter((n) => view.visible(n));
      const rest = after === undefined ? names : names.filter((n) => n > after);
      const page = rest.slice(0, size);
      const last = page.at(-1);
      const nextPageToken = rest.length > size && last !== undefined ? encodePageToken(scope, last) : "";
      if (basic) return { workspaces: page.map((name) => ({ name })), nextPageToken };
      const described = await coordinator.describeWorkspaces(page, opts);
      const summaries = await insights.summariesOf(described, opts);
      return {
        workspaces: described.map((w, i) => workspaceToProto(w, false, view, summaries[i])),
        nextPageToken,
      };
    },

    async getWorkspace(req, ctx) {
      const name = req.name;
      const opts = callOptions(ctx);
      const w = await coordinator.getWorkspace(name, opts);
      if (isBasic(req.view)) return { workspace: workspaceToProto(w, true, callerView(ctx)) };
      // One workspace: its summary is computed whatever the state's size.
      const [summary] = await insights.summariesOf([w], opts, Number.POSITIVE_INFINITY);
      return { workspace: workspaceToProto(w, false, callerView(ctx), summary) };
    },

    async createWorkspace(req, ctx) {
      const name = req.name;
      const summary = await coordinator.createWorkspace(name, callOptions(ctx));
      return { workspace: workspaceToProto(summary, false, callerView(ctx)) };
    },

    async deleteWorkspace(req, ctx) {
      const name = req.name;
      if (name === DEFAULT_WORKSPACE) {
        throw new InvalidArgumentError('the "default" workspace cannot be deleted');
      }
      await coordinator.deleteWorkspace(name, {
        ...callOptions(ctx),
        lockId: req.lockId === "" ? undefined : req.lockId,
        force: req.force,
      });
      return {};
    },
  };
}

function isBasic(view: WorkspaceView): boolean {
  return view === WorkspaceView.BASIC;
}
