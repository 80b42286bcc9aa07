/**
 * What every RPC method needs from its caller: nothing (health checks come without credentials),
 * a known caller (reflection), or a permission on the workspace the request names. Methods that
 * answer about several workspaces (ListWorkspaces, WatchLock of all) need a known caller and show
 * only what it may see. Every method the server serves has an entry: a method without one is
 * refused, and test/rpc/method-access.test.ts fails for it.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { StateService } from "../gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../gen/tfstate/v1/workspace_service_pb.ts";
import type { Permission } from "../policy/permissions.ts";

/** `visible`: any permission on the workspace (its lock status, its summary). */
export type Need = Permission | "visible";

export type MethodAccess =
  | { kind: "public" }
  | { kind: "authenticated" }
  | {
      kind: "workspace";
      /** The workspace the (first) request message names; undefined: several, filtered by the handler. */
      workspace(message: unknown): string | undefined;
      need(message: unknown): Need;
    };

type Fields = Record<string, unknown>;
const field = (name: string) => (m: unknown) => String((m as Fields)[name] ?? "");
const ws = field("workspace");
const named = field("name");
const fixed = (need: Need) => () => need;
const on = (workspace: (m: unknown) => string | undefined, need: (m: unknown) => Need): MethodAccess => ({
  kind: "workspace",
  workspace,
  need,
});

const S = StateService.method;
const W = WorkspaceService.method;

export const METHOD_ACCESS: ReadonlyMap<DescMethod, MethodAccess> = new Map<DescMethod, MethodAccess>([
  [S.getState, on(ws, fixed("read"))],
  [S.putState, on(ws, fixed("write"))],
  [S.deleteState, on(ws, fixed("write"))],
  [S.lock, on(ws, fixed("lock"))],
  [S.unlock, on(ws, (m) => ((m as Fields).force === true ? "force-unlock" : "lock"))],
  [S.getLock, on(ws, fixed("visible"))],
  // "" watches every workspace: the events of those the caller may not see are left out.
  [S.watchLock, on((m) => (ws(m) === "" ? undefined : ws(m)), fixed("visible"))],
  [S.listVersions, on(ws, fixed("read"))],
  [S.getVersion, on(ws, fixed("read"))],
  [S.restoreVersion, on(ws, fixed("admin"))],
  [S.downloadState, on(ws, fixed("read"))],
  [
    S.uploadState,
    on((m) => {
      const payload = (m as { payload?: { case?: string; value?: Fields } }).payload;
      return payload?.case === "header" ? String(payload.value?.workspace ?? "") : "";
    }, fixed("write")),
  ],
  // Outputs are masked in all three; the state's other values never leave the server.
  [S.getStateSummary, on(ws, fixed("read-outputs"))],
  [S.getOutputs, on(ws, fixed("read-outputs"))],
  [S.diffVersions, on(ws, fixed("read"))],
  [W.listWorkspaces, on(() => undefined, fixed("visible"))],
  [W.getWorkspace, on(named, fixed("visible"))],
  [W.createWorkspace, on(named, fixed("admin"))],
  [W.deleteWorkspace, on(named, fixed("admin"))],
  [Health.method.check, { kind: "public" }],
  [Health.method.list, { kind: "public" }],
  [Health.method.watch, { kind: "public" }],
  [ServerReflection.method.serverReflectionInfo, { kind: "authenticated" }],
  [ServerReflectionV1Alpha.method.serverReflectionInfo, { kind: "authenticated" }],
]);
