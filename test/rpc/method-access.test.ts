/**
 * Every RPC method and every http backend route needs the permission its table names, checked on
 * the real server: a method served without an access rule, or a route whose action has no
 * permission, fails here. For each method that names a workspace: a caller with every permission
 * but the one it needs is PERMISSION_DENIED naming it; one with none there gets NOT_FOUND, the same
 * answer for a workspace that exists and one that does not; one with just that permission passes.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { fetch } from "undici";
import { UnauthenticatedError } from "../../src/errors.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import type { Authenticator } from "../../src/http/server.ts";
import { noopLogger } from "../../src/log.ts";
import { PERMISSIONS, type Permission } from "../../src/policy/permissions.ts";
import { Policy, type PolicyRule } from "../../src/policy/policy.ts";
import { METHOD_ACCESS } from "../../src/rpc/method-access.ts";
import { SERVED_SERVICES } from "../../src/rpc/routes.ts";
import { ACTION_NEEDS } from "../../src/tfhttp/authorization.ts";
import { createTerraformHttpRoute, policyAuthorizer, TERRAFORM_HTTP_ROUTES } from "../../src/tfhttp/index.ts";
import { startRegistryFixture, text } from "./fixture.ts";

const fx = await startRegistryFixture();

/** `Bearer <name>` is the token named so; nothing else is accepted. */
const byName: Authenticator = async (req) => {
  const m = /^Bearer ([\w.-]+)$/.exec(req.headers.get("authorization") ?? "");
  if (m === null) throw new UnauthenticatedError("credentials required");
  return { method: "token", name: m[1] as string, token: m[1] as string };
};

/** Token `only-<p>` holds p on w-*; `but-<p>` holds everything but p (and admin, which implies it). */
function rules(): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const p of PERMISSIONS) {
    out.push({ principals: [{ kind: "token", name: `only-${p}` }], workspaces: ["w-*"], permissions: [p] });
    const rest = PERMISSIONS.filter(
      (q) => q !== p && q !== "admin" && !(p === "read-outputs" && q === "read"),
    );
    out.push({ principals: [{ kind: "token", name: `but-${p}` }], workspaces: ["w-*"], permissions: rest });
  }
  out.push({
    principals: [{ kind: "token", name: "elsewhere" }],
    workspaces: ["other-*"],
    permissions: ["admin"],
  });
  return out;
}
const policy = Policy.fromRules(rules());

const served = await fx.serve({
  server: { authenticate: byName, policy },
  routes: (coordinator) => [
    createTerraformHttpRoute({
      coordinator,
      logger: noopLogger,
      maxStateSize: 1024 * 1024,
      authorize: policyAuthorizer(policy),
    }),
  ],
});

const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const state = createClient(StateService, createGrpcTransport({ baseUrl: served.url }));
const workspaces = createClient(WorkspaceService, createGrpcTransport({ baseUrl: served.url }));

async function drain(s: AsyncIterable<unknown>, n = Number.POSITIVE_INFINITY): Promise<void> {
  let i = 0;
  for await (const _ of s) if (++i >= n) return;
}

/** One call of each workspace method on `ws` as `token`; its outcome, whatever it is. */
const CALLS: Record<string, (ws: string, token: string) => Promise<unknown>> = {
  GetState: (ws, t) => state.getState({ workspace: ws }, as(t)),
  PutState: (ws, t) => state.putState({ workspace: ws, state: text("{}") }, as(t)),
  DeleteState: (ws, t) => state.deleteState({ workspace: ws }, as(t)),
  Lock: (ws, t) => state.lock({ workspace: ws, lock: { id: `l-${t}` } }, as(t)),
  Unlock: (ws, t) => state.unlock({ workspace: ws, lockId: `l-${t}` }, as(t)),
  GetLock: (ws, t) => state.getLock({ workspace: ws }, as(t)),
  WatchLock: (ws, t) => drain(state.watchLock({ workspace: ws }, as(t)), 1),
  ListVersions: (ws, t) => state.listVersions({ workspace: ws }, as(t)),
  GetVersion: (ws, t) => state.getVersion({ workspace: ws, version: 1n }, as(t)),
  RestoreVersion: (ws, t) => state.restoreVersion({ workspace: ws, version: 1n }, as(t)),
  DownloadState: (ws, t) => drain(state.downloadState({ workspace: ws }, as(t))),
  UploadState: (ws, t) =>
    state.uploadState(
      (async function* () {
        yield { payload: { case: "header" as const, value: { workspace: ws } } };
        yield { payload: { case: "chunk" as const, value: text("{}") } };
      })(),
      as(t),
    ),
  GetStateSummary: (ws, t) => state.getStateSummary({ workspace: ws }, as(t)),
  GetOutputs: (ws, t) => state.getOutputs({ workspace: ws }, as(t)),
  DiffVersions: (ws, t) => state.diffVersions({ workspace: ws, fromVersion: 1n }, as(t)),
  ListWorkspaces: (_ws, t) => workspaces.listWorkspaces({}, as(t)),
  GetWorkspace: (ws, t) => workspaces.getWorkspace({ name: ws }, as(t)),
  CreateWorkspace: (ws, t) => workspaces.createWorkspace({ name: ws }, as(t)),
  DeleteWorkspace: (ws, t) => workspaces.deleteWorkspace({ name: ws, force: true }, as(t)),
};

async function outcome(p: Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

function needOf(method: DescMethod): Permission | "visible" | undefined {
  const rule = METHOD_ACCESS.get(method);
  if (rule?.kind !== "workspace") return undefined;
  return rule.need(method.name === "Unlock" ? { force: false } : {});
}

describe("the access table covers every served method", () => {
  test("each method of each served service has an access rule", () => {
    const missing = SERVED_SERVICES.flatMap((s) => s.methods).filter((m) => !METHOD_ACCESS.has(m));
    assert.deepEqual(
      missing.map((m) => `${m.parent.typeName}/${m.name}`),
      [],
      "add these methods to src/rpc/method-access.ts",
    );
  });

  test("each method that names a workspace is exercised here", () => {
    const named = [...METHOD_ACCESS].filter(([, r]) => r.kind === "workspace").map(([m]) => m.name);
    assert.deepEqual(
      named.filter((n) => !(n in CALLS)),
      [],
    );
  });
});

describe("each workspace method needs exactly its permission", () => {
  for (const [method, rule] of METHOD_ACCESS) {
    if (rule.kind !== "workspace" || method.name === "ListWorkspaces") continue;
    const need = needOf(method) as Permission | "visible";
    const call = CALLS[method.name] as (ws: string, t: string) => Promise<unknown>;
    test(`${method.name} needs ${need}`, async () => {
      const ws = `w-${method.name.toLowerCase()}`;
      const missing = `w-never-${method.name.toLowerCase()}`;
      if (need !== "visible") {
        const denied = await outcome(call(ws, `but-${need}`));
        assert.equal(
          denied?.code,
          Code.PermissionDenied,
          `${method.name} without ${need}: ${denied?.message}`,
        );
        assert.match(denied.rawMessage, new RegExp(`lacks the ${need} permission on workspace "${ws}"`));
      }
      // No permission there at all: the same answer whether or not the workspace exists.
      await outcome(CALLS.PutState?.("w-exists", "only-admin") as Promise<unknown>);
      const a = await outcome(call("w-exists", "elsewhere"));
      const b = await outcome(call(missing, "elsewhere"));
      assert.equal(a?.code, Code.NotFound);
      assert.equal(b?.code, Code.NotFound);
      assert.equal(a.rawMessage.replace("w-exists", "X"), b.rawMessage.replace(missing, "X"));
      // With the permission it needs, the policy lets it through (it may still fail for its own
      // reasons); on an existing workspace, "does not exist" can only be the policy's answer.
      await outcome(CALLS.PutState?.(ws, "only-admin") as Promise<unknown>);
      const token = need === "visible" ? "only-read-outputs" : `only-${need}`;
      const allowed = await outcome(call(ws, token));
      assert.ok(
        allowed === undefined ||
          !(allowed.code === Code.PermissionDenied || /does not exist$/.test(allowed.rawMessage)),
        `${method.name} with ${need}: ${allowed?.message}`,
      );
    });
  }

  test("Unlock with force needs force-unlock", async () => {
    const denied = await outcome(state.unlock({ workspace: "w-force", force: true }, as("only-lock")));
    assert.equal(denied?.code, Code.PermissionDenied);
    assert.equal(
      await outcome(state.unlock({ workspace: "w-force", force: true }, as("only-force-unlock"))),
      undefined,
    );
  });
});

describe("the http backend's routes", () => {
  test("each route's action needs a permission", () => {
    for (const r of TERRAFORM_HTTP_ROUTES) assert.ok(ACTION_NEEDS[r.action], `${r.method} ${r.path}`);
  });

  for (const r of TERRAFORM_HTTP_ROUTES) {
    const need = ACTION_NEEDS[r.action];
    test(`${r.method} ${r.path} needs ${need}`, async () => {
      const ws = `w-http-${r.action}`;
      const url = `${served.url}${r.path.replace("{workspace}", ws)}`;
      const body =
        r.action === "lock" || r.action === "unlock"
          ? '{"ID":"h1"}'
          : r.action === "write"
            ? "{}"
            : undefined;
      const send = async (token: string, target = url) => {
        const res = await fetch(target, {
          method: r.method,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          ...(body !== undefined ? { body } : {}),
        });
        await res.arrayBuffer();
        return res.status;
      };
      assert.equal(await send(`but-${need}`), 403);
      assert.equal(await send("elsewhere"), 404);
      assert.notEqual(await send(`only-${need}`), 403);
    });
  }
});

describe("what a caller may not see is not shown", () => {
  test("ListWorkspaces lists only the workspaces the caller may see", async () => {
    await state.putState({ workspace: "other-visible", state: text("{}") }, as("elsewhere"));
    await state.putState({ workspace: "w-hidden", state: text("{}") }, as("only-admin"));
    const names = (await workspaces.listWorkspaces({}, as("elsewhere"))).workspaces.map((w) => w.name);
    assert.ok(names.includes("other-visible"));
    assert.ok(
      names.every((n) => n.startsWith("other-")),
      names.join(),
    );
  });

  test("a lock's ID is shown only to callers who may lock: GetLock, WatchLock, ListWorkspaces, a refused write", async () => {
    const ws = "w-holder";
    await state.putState({ workspace: ws, state: text("{}") }, as("only-write"));
    await state.lock({ workspace: ws, lock: { id: "secret-id", who: "ci" } }, as("only-lock"));
    try {
      assert.equal((await state.getLock({ workspace: ws }, as("only-lock"))).lock?.id, "secret-id");
      const seen = await state.getLock({ workspace: ws }, as("only-read"));
      assert.equal(seen.lock?.who, "ci");
      assert.equal(seen.lock?.id, "");
      for await (const event of state.watchLock({ workspace: ws }, as("only-read"))) {
        assert.equal(event.lock?.who, "ci");
        assert.equal(event.lock?.id, "");
        break;
      }
      const listed = await workspaces.getWorkspace({ name: ws }, as("only-read"));
      assert.equal(listed.workspace?.lock?.id, "");
      const refused = await outcome(state.putState({ workspace: ws, state: text("{}") }, as("only-write")));
      assert.equal(refused?.code, Code.FailedPrecondition);
      assert.ok(!refused.rawMessage.includes("secret-id"), refused.rawMessage);
      const res = await fetch(`${served.url}/terraform/state/${ws}`, {
        method: "POST",
        headers: { authorization: "Bearer only-write", "content-type": "application/json" },
        body: "{}",
      });
      const text409 = await res.text();
      assert.equal(res.status, 409);
      assert.ok(!text409.includes("secret-id"), text409);
    } finally {
      await state.unlock({ workspace: ws, lockId: "secret-id" }, as("only-lock"));
    }
  });

  test("a workspace says what its caller may do to it, implications expanded, in one order", async () => {
    await workspaces.createWorkspace({ name: "w-perms" }, as("only-admin"));
    const of = async (token: string) =>
      (await workspaces.getWorkspace({ name: "w-perms" }, as(token))).workspace?.callerPermissions;
    assert.deepEqual(await of("only-lock"), ["lock"]);
    assert.deepEqual(await of("only-read"), ["read", "read-outputs"]);
    assert.deepEqual(await of("only-admin"), [...PERMISSIONS]);
    assert.deepEqual(await of("but-admin"), ["read", "read-outputs", "write", "lock", "force-unlock"]);
    const listed = await workspaces.listWorkspaces({}, as("only-write"));
    assert.deepEqual(listed.workspaces.find((w) => w.name === "w-perms")?.callerPermissions, ["write"]);
    const noPolicy = await fx.serve();
    const open = createClient(WorkspaceService, createGrpcTransport({ baseUrl: noPolicy.url }));
    // Whether this server shares the first one's repository or not.
    await open.createWorkspace({ name: "w-perms" }).catch((e: unknown) => {
      if (ConnectError.from(e).code !== Code.AlreadyExists) throw e;
    });
    assert.deepEqual((await open.getWorkspace({ name: "w-perms" })).workspace?.callerPermissions, [
      ...PERMISSIONS,
    ]);
  });

  test("WatchLock of all workspaces carries only the workspaces the caller may see", async () => {
    const events: string[] = [];
    const ac = new AbortController();
    const watching = (async () => {
      try {
        for await (const e of state.watchLock({ workspace: "" }, { ...as("elsewhere"), signal: ac.signal })) {
          if (e.workspace !== "") events.push(e.workspace);
          if (e.workspace === "other-watched") ac.abort();
        }
      } catch {
        // ended by the abort
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await state.lock({ workspace: "w-unseen", lock: { id: "u" } }, as("only-lock"));
    await state.lock({ workspace: "other-watched", lock: { id: "o" } }, as("elsewhere"));
    await watching;
    assert.ok(events.includes("other-watched"));
    assert.ok(!events.includes("w-unseen"), events.join());
    await state.unlock({ workspace: "w-unseen", lockId: "u" }, as("only-lock"));
    await state.unlock({ workspace: "other-watched", lockId: "o" }, as("elsewhere"));
  });
});
