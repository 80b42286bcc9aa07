import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CanceledError, DeadlineExceededError } from "../../src/errors.ts";
import { eventually, lockInfo, sleep, startCoordinatorFixture, str, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();

describe("per-workspace serialisation", () => {
  test("lock, unlock, put, delete and restore on one workspace take turns; reads and other workspaces do not wait", async () => {
    const { coord, repo } = fx.coordinator({ backend: { maxVersions: 3 } });
    await coord.putState("default", text("v1"));
    await coord.putState("other", text("o1"));
    // Hold the next state write inside its registry round trip until the read and the other
    // workspace's write are done (so they did not wait for it), and see what arrived meanwhile.
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let holding!: () => void;
    const held = new Promise<void>((r) => {
      holding = r;
    });
    let during: string[] = [];
    fx.proxy.fault({
      method: "PUT",
      path: new RegExp(`/v2/${repo}/manifests/state-default$`),
      times: 1,
      action: {
        kind: "afterUpstream",
        run: async () => {
          const from = fx.proxy.requests.length;
          holding();
          await released;
          during = fx.requestsFor(repo, from).map((r) => `${r.method} ${r.path}`);
        },
      },
    });
    try {
      // A write takes its turn once its body is stored; the others queue behind it while it is held.
      const write = coord.putState("default", text("v2"));
      await held;
      const ops = [
        write,
        coord.lock("default", lockInfo("L")),
        coord.deleteState("default", { lockId: "L" }),
        coord.restoreVersion("default", 1, { lockId: "L" }),
        coord.unlock("default", "L"),
      ];
      assert.ok(await coord.getState("default"), "a read is served while the write is in flight");
      await coord.putState("other", text("o2"));
      await sleep(50); // room for a queued operation that wrongly went ahead to show up
      release();
      await Promise.all(ops);
    } finally {
      release();
      fx.proxy.clearFaults();
    }
    assert.deepEqual(
      during.filter((r) => r.includes("-default") && r !== "GET manifests/state-default"),
      [],
      `only the read of the workspace arrived during its write: ${JSON.stringify(during)}`,
    );
    assert.ok(during.includes("PUT manifests/state-other"), "the other workspace was written meanwhile");
    assert.equal(
      str((await coord.getState("default"))?.data ?? new Uint8Array()),
      "v1",
      "restored after the delete",
    );
  });

  test("a queued write whose deadline passes or whose caller cancels leaves the queue without moving a tag", async () => {
    const { coord, repo } = fx.coordinator();
    await coord.putState("default", text("v1"));
    fx.proxy.fault({
      method: "PUT",
      path: new RegExp(`/v2/${repo}/manifests/state-default$`),
      times: 1,
      action: { kind: "delay", ms: 2500 },
    });
    try {
      const before = fx.proxy.requests.length;
      const slow = coord.putState("default", text("slow"));
      await eventually(
        () =>
          fx
            .requestsFor(repo, before)
            .some((r) => r.method === "PUT" && r.path === "manifests/state-default"),
        1000,
        "the slow write held at its manifest PUT",
      );
      const ac = new AbortController();
      const canceled = coord.putState("default", text("canceled"), { signal: ac.signal });
      const late = coord.putState("default", text("late"), { deadline: Date.now() + 1200 });
      // Their bodies are stored as blobs first (no turn needed), then they queue behind the slow one.
      await eventually(() => coord.stats().queuedOperations === 3, 1000, "both writes queued");
      const from = fx.proxy.requests.length;
      ac.abort();
      await assert.rejects(
        canceled,
        (e: unknown) => e instanceof CanceledError && /while queued/.test(e.message),
      );
      await assert.rejects(
        late,
        (e: unknown) => e instanceof DeadlineExceededError && /while queued/.test(e.message),
      );
      assert.equal(coord.stats().queuedOperations, 1);
      await slow;
      assert.deepEqual(fx.requestsFor(repo, from), [], "the dropped writes sent nothing once queued");
    } finally {
      fx.proxy.clearFaults();
    }
    assert.equal(str((await coord.getState("default"))?.data ?? new Uint8Array()), "slow");
    assert.equal(coord.stats().queuedOperations, 0);
  });
});
