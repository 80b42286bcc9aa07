/**
 * A watch outlives policy reloads (it lasts hours), so what it shows follows the policy in force:
 * a grant taken away stops the next event, a lock permission taken away hides the next lock ID, a
 * grant given shows the next event, all without the client opening a new stream.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UnauthenticatedError } from "../../src/errors.ts";
import {
  LockEventKind,
  StateService,
  type WatchLockResponse,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import type { Authenticator } from "../../src/http/server.ts";
import type { Permission } from "../../src/policy/permissions.ts";
import { Policy, type PolicySource } from "../../src/policy/policy.ts";
import { startRegistryFixture } from "./fixture.ts";

const fx = await startRegistryFixture();

const byName: Authenticator = async (req) => {
  const m = /^Bearer ([\w.-]+)$/.exec(req.headers.get("authorization") ?? "");
  if (m === null) throw new UnauthenticatedError("credentials required");
  return { method: "token", name: m[1] as string, token: m[1] as string };
};

const grants = (viewer: Record<string, Permission[]>) =>
  Policy.fromRules([
    { principals: [{ kind: "token", name: "admin" }], workspaces: ["*"], permissions: ["admin"] },
    ...Object.entries(viewer).map(([ws, permissions]) => ({
      principals: [{ kind: "token" as const, name: "viewer" }],
      workspaces: [ws],
      permissions,
    })),
  ]);

/** The source the server reads on every question; the test swaps its policy as SIGHUP would. */
const source: { current: Policy } & PolicySource = {
  current: grants({ "w-a": ["read", "lock"], "w-b": ["read"] }),
};

const served = await fx.serve({ server: { authenticate: byName, policy: source } });
const state = createClient(StateService, createGrpcTransport({ baseUrl: served.url }));
const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** Collects the viewer's events of every workspace until aborted. */
function watchAll(requested = "") {
  const events: WatchLockResponse[] = [];
  const ac = new AbortController();
  const done = (async () => {
    try {
      for await (const e of state.watchLock({ workspace: requested }, { ...as("viewer"), signal: ac.signal }))
        events.push(e);
    } catch {
      // ended by the abort
    }
  })();
  return {
    events,
    stop: () => {
      ac.abort();
      return done;
    },
  };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ok()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const lockCycle = async (ws: string, id: string) => {
  await state.lock({ workspace: ws, lock: { id, who: "admin@test" } }, as("admin"));
  await state.unlock({ workspace: ws, lockId: id }, as("admin"));
};
const locked = (events: WatchLockResponse[], ws: string) =>
  events.filter((e) => e.workspace === ws && e.kind === LockEventKind.LOCKED && e.lock?.who === "admin@test");

test("what an open watch shows follows the policy in force", async () => {
  const all = watchAll();
  const one = watchAll("w-a");
  await new Promise((r) => setTimeout(r, 300));

  await lockCycle("w-a", "id-1");
  await until("the first lock of w-a", () => locked(all.events, "w-a").length === 1);
  assert.equal(locked(all.events, "w-a")[0]?.lock?.id, "id-1", "with lock: the ID is shown");
  await until("the first lock on the one-workspace watch", () => locked(one.events, "w-a").length === 1);

  // lock taken away on w-a: the next event comes without its ID.
  source.current = grants({ "w-a": ["read"], "w-b": ["read"] });
  await lockCycle("w-a", "id-2");
  await until("the second lock of w-a", () => locked(all.events, "w-a").length === 2);
  assert.equal(locked(all.events, "w-a")[1]?.lock?.id, "", "without lock: no ID");

  // w-a taken away altogether: its events stop on both streams; w-b's still come.
  source.current = grants({ "w-b": ["read"] });
  await lockCycle("w-a", "id-3");
  await lockCycle("w-b", "id-4");
  await until("the lock of w-b", () => locked(all.events, "w-b").length === 1);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(locked(all.events, "w-a").length, 2, "no w-a event once it is not visible");
  assert.equal(locked(one.events, "w-a").length, 2);
  assert.equal(
    one.events.some((e) => e.lock?.id === "id-3"),
    false,
    "the one-workspace watch shows nothing more of it",
  );

  // A grant given: the next event of w-c comes on the open stream.
  source.current = grants({ "w-b": ["read"], "w-c": ["read"] });
  await lockCycle("w-c", "id-5");
  await until("the lock of w-c", () => locked(all.events, "w-c").length === 1);

  await all.stop();
  await one.stop();
});
