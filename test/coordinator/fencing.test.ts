import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LockError } from "../../src/oras/index.ts";
import { lockInfo, startCoordinatorFixture, str, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();

function isLockErrorHeldBy(id: string, who?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof LockError, `expected a LockError, got ${String(e)}`);
    assert.equal(e.holder.id, id);
    if (who !== undefined) assert.equal(e.holder.who, who);
    return true;
  };
}

describe("fencing: writes on a locked workspace carry the holder's lock ID", () => {
  test("a write without the ID or with a wrong one is refused with the holder's LockInfo; the right ID is accepted", async () => {
    const { coord } = fx.coordinator();
    await coord.putState("default", text("v0"));
    await coord.lock("default", lockInfo("holder-1", "alice@host"));

    await assert.rejects(coord.putState("default", text("no id")), (e: unknown) => {
      isLockErrorHeldBy("holder-1", "alice@host")(e);
      assert.match((e as Error).message, /must carry the holder's lock ID/);
      assert.equal((e as LockError).generation, 1);
      return true;
    });
    await assert.rejects(
      coord.putState("default", text("wrong"), { lockId: "intruder" }),
      isLockErrorHeldBy("holder-1", "alice@host"),
    );
    await assert.rejects(coord.deleteState("default", { lockId: "intruder" }), isLockErrorHeldBy("holder-1"));
    await assert.rejects(coord.restoreVersion("default", 1, {}), isLockErrorHeldBy("holder-1"));
    await assert.rejects(
      coord.putStateStream("default", (async function* () {})(), {}),
      isLockErrorHeldBy("holder-1"),
    );
    assert.equal(
      str((await coord.getState("default"))?.data ?? new Uint8Array()),
      "v0",
      "nothing was written",
    );

    await coord.putState("default", text("v1"), { lockId: "holder-1" });
    assert.equal(str((await coord.getState("default"))?.data ?? new Uint8Array()), "v1");
  });

  test("a write on an unlocked workspace without an ID is accepted", async () => {
    const { coord } = fx.coordinator();
    await coord.putState("default", text("free"));
    await coord.deleteState("default");
    assert.equal(await coord.getState("default"), null);
  });

  test("a write with the ID of a lock that was released or force-unlocked is refused (the caller lost its lock)", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("default", lockInfo("gone"));
    await coord.unlock("default", "gone");
    await assert.rejects(coord.putState("default", text("late"), { lockId: "gone" }), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.holder.id, "", "nobody holds it");
      assert.match(e.message, /not locked with lock ID gone/);
      return true;
    });

    await coord.lock("default", lockInfo("first"));
    await coord.unlock("default", "", { force: true });
    await coord.lock("default", lockInfo("second", "bob@host"));
    await assert.rejects(
      coord.putState("default", text("stale"), { lockId: "first" }),
      isLockErrorHeldBy("second", "bob@host"),
    );
    assert.equal(await coord.getState("default"), null);
  });

  test("a lock a ghoten CLI wrote straight into the registry is respected", async () => {
    const { coord, repo } = fx.coordinator();
    await coord.putState("default", text("before"));
    await fx.pushGhotenLock(repo, "default", "ghoten-lock", { who: "ci@runner" });
    await assert.rejects(
      coord.putState("default", text("over it")),
      isLockErrorHeldBy("ghoten-lock", "ci@runner"),
    );
    await coord.putState("default", text("as holder"), { lockId: "ghoten-lock" });
    assert.equal(str((await coord.getState("default"))?.data ?? new Uint8Array()), "as holder");
  });

  test("in steady state a fenced write costs one extra request: a conditional lock read answered 304", async () => {
    const { coord, repo } = fx.coordinator();
    await coord.putState("default", text("warm up"));
    await coord.lock("default", lockInfo("me"));
    const from = fx.proxy.requests.length;
    await coord.putState("default", text("fenced"), { lockId: "me" });
    const calls = fx.requestsFor(repo, from);
    const lockReads = calls.filter((c) => c.path === "manifests/locked-default");
    assert.deepEqual(lockReads, [{ method: "GET", path: "manifests/locked-default", status: 304 }]);
    assert.equal(calls.length, 4, `lock read + blob POST, PUT + manifest PUT: ${JSON.stringify(calls)}`);
  });

  test("in steady state a lock costs 3 requests and an unlock 2: the digest just verified is deleted", async () => {
    const { coord, repo } = fx.coordinator();
    await coord.putState("default", text("warm up"));
    await coord.lock("default", lockInfo("warm"));
    await coord.unlock("default", "warm");
    let from = fx.proxy.requests.length;
    await coord.lock("default", lockInfo("me"));
    const lock = fx.requestsFor(repo, from);
    assert.equal(lock.length, 3, JSON.stringify(lock));
    from = fx.proxy.requests.length;
    assert.equal((await coord.unlock("default", "me"))?.id, "me");
    const unlock = fx.requestsFor(repo, from);
    assert.deepEqual(
      unlock.map((c) => `${c.method} ${c.status}`),
      ["GET 304", "DELETE 202"],
      JSON.stringify(unlock),
    );
    assert.equal((await coord.getLock("default")).state, "unlocked");
  });
});
