import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LockEvent } from "../../src/coordinator/index.ts";
import { WatchStream } from "../../src/coordinator/watch-stream.ts";
import { workspaceTag } from "../../src/oras/index.ts";
import { eventually, lockInfo, nextEvent, POLL_MS, sleep, startCoordinatorFixture } from "./fixture.ts";

const fx = await startCoordinatorFixture();

function summary(e: LockEvent): string {
  if (e.kind === "snapshot_complete") return e.kind;
  return `${e.kind} ${e.workspace}${e.info ? ` ${e.info.id}` : ""}${e.kind === "unlocked" ? "" : ` g${e.generation}`}`;
}

describe("WatchLock", () => {
  test("opens with the current status, then gets lock and unlock through the coordinator within 1 s", async () => {
    const { coord } = fx.coordinator({ watchPollIntervalMs: 60_000 }); // only pushes can deliver in time
    await coord.lock("default", lockInfo("before"));
    const ac = new AbortController();
    const it = coord.watchLock("default", ac.signal)[Symbol.asyncIterator]();
    assert.equal(summary(await nextEvent(it)), "snapshot default before g1");
    assert.equal(summary(await nextEvent(it)), "snapshot_complete");

    let at = Date.now();
    await coord.unlock("default", "before");
    const unlocked = await nextEvent(it, 1000);
    assert.equal(summary(unlocked), "unlocked default before");
    assert.ok(unlocked.observedAt >= at);

    at = Date.now();
    await coord.lock("default", lockInfo("after", "bob@host"));
    const locked = await nextEvent(it, 1000);
    assert.equal(summary(locked), "locked default after g1");
    assert.equal(locked.kind === "locked" && locked.info?.who, "bob@host");
    assert.ok(Date.now() - at < 1000);
    ac.abort();
    assert.equal((await it.next()).done, true, "an aborted stream finishes");
  });

  test("a lock a ghoten CLI writes straight into the registry, and its removal, reach watchers through the poller", async () => {
    const { coord, repo } = fx.coordinator();
    const ac = new AbortController();
    const it = coord.watchLock("default", ac.signal)[Symbol.asyncIterator]();
    assert.equal(summary(await nextEvent(it)), "snapshot default g0");
    assert.equal(summary(await nextEvent(it)), "snapshot_complete");
    const digest = await fx.pushGhotenLock(repo, "default", "cli", { who: "ci@runner", generation: 3 });
    const locked = await nextEvent(it, POLL_MS * 10);
    assert.equal(summary(locked), "locked default cli g3");
    assert.equal(locked.kind === "locked" && locked.info?.who, "ci@runner");
    await fx.deleteManifest(repo, digest);
    assert.equal(summary(await nextEvent(it, POLL_MS * 10)), "unlocked default cli");
    ac.abort();
  });

  test("1,000 watchers on one workspace all get the change, from exactly one poller", async () => {
    const { coord, repo } = fx.coordinator();
    const ac = new AbortController();
    const iterators = Array.from({ length: 1000 }, () =>
      coord.watchLock("default", ac.signal)[Symbol.asyncIterator](),
    );
    for (const it of iterators) {
      assert.equal(summary(await nextEvent(it)), "snapshot default g0");
      assert.equal(summary(await nextEvent(it)), "snapshot_complete");
    }
    assert.equal(coord.stats().watchers, 1000);
    assert.equal(coord.stats().pollers, 1);

    const from = fx.proxy.requests.length;
    const window = POLL_MS * 8;
    await sleep(window);
    const polls = fx.requestsFor(repo, from).filter((r) => r.path === "manifests/locked-default");
    assert.ok(
      polls.length >= 3 && polls.length <= window / POLL_MS + 2,
      `one poller: ${polls.length} lock reads in ${window} ms`,
    );
    assert.ok(polls.every((r) => r.method === "GET"));

    const pushed = Date.now();
    await fx.pushGhotenLock(repo, "default", "for-all");
    const got = await Promise.all(iterators.map((it) => nextEvent(it, POLL_MS * 10)));
    assert.ok(got.every((e) => summary(e) === "locked default for-all g1"));
    assert.ok(Date.now() - pushed < POLL_MS * 10);
    ac.abort();
    await eventually(() => coord.stats().watchers === 0, 1000, "every stream freed");
  });

  test("cancelling streams frees them: no subscribers left, the poller stops", async () => {
    const { coord, repo } = fx.coordinator();
    const controllers = Array.from({ length: 5 }, () => new AbortController());
    const iterators = controllers.map((ac) => coord.watchLock("default", ac.signal)[Symbol.asyncIterator]());
    const viaReturn = coord.watchLock("default", new AbortController().signal)[Symbol.asyncIterator]();
    for (const it of [...iterators, viaReturn]) await nextEvent(it);
    assert.equal(coord.stats().watchers, 6);
    assert.equal(coord.stats().pollers, 1);

    for (const ac of controllers.slice(0, 4)) ac.abort();
    assert.equal(coord.stats().watchers, 2);
    assert.equal(coord.stats().pollers, 1, "still watched");
    await viaReturn.return?.();
    controllers[4]?.abort();
    assert.deepEqual(coord.stats(), { watchers: 0, pollers: 0, lockWaiters: 0, queuedOperations: 0 });
    for (const it of iterators) assert.equal((await it.next()).done, true);

    await sleep(POLL_MS); // a poll in flight when the last watcher left may still land
    const from = fx.proxy.requests.length;
    await sleep(POLL_MS * 4);
    assert.deepEqual(fx.requestsFor(repo, from), [], "no polling after the last watcher left");
  });

  test("a consumer that never reads does not delay the others, and its buffer stays bounded", async () => {
    const { coord } = fx.coordinator({ watchBufferSize: 4, watchPollIntervalMs: 60_000 });
    const ac = new AbortController();
    const stuck = coord.watchLock("default", ac.signal);
    const reader = coord.watchLock("default", ac.signal)[Symbol.asyncIterator]();
    await nextEvent(reader);
    await nextEvent(reader);
    for (let i = 0; i < 20; i++) {
      const at = Date.now();
      await coord.lock("default", lockInfo(`round-${i}`));
      assert.equal(summary(await nextEvent(reader, 1000)), `locked default round-${i} g1`);
      await coord.unlock("default", `round-${i}`);
      assert.equal(summary(await nextEvent(reader, 1000)), `unlocked default round-${i}`);
      assert.ok(Date.now() - at < 1000);
    }
    assert.ok(stuck instanceof WatchStream);
    assert.ok(stuck.pending <= 4, `buffer bounded: ${stuck.pending} pending`);
    assert.ok(stuck.coalesced > 0);
    // What it finally reads is the snapshot, then the latest status.
    const events: string[] = [];
    for (let n = stuck.pending; n > 0; n--)
      events.push(summary(await nextEvent(stuck[Symbol.asyncIterator]())));
    assert.equal(events[0], "snapshot default g0");
    assert.equal(events[1], "snapshot_complete");
    assert.equal(events.at(-1), "unlocked default round-19");
    ac.abort();
  });

  test("watching all workspaces: a snapshot of every locked one, then changes on any, foreign ones included", async () => {
    const { coord, repo } = fx.coordinator();
    await coord.lock("alpha", lockInfo("a1"));
    await coord.lock("beta", lockInfo("b1"));
    await coord.putState("gamma", new Uint8Array([1]));
    const ac = new AbortController();
    const it = coord.watchLock(undefined, ac.signal)[Symbol.asyncIterator]();
    assert.equal(summary(await nextEvent(it)), "snapshot alpha a1 g1");
    assert.equal(summary(await nextEvent(it)), "snapshot beta b1 g1");
    assert.equal(summary(await nextEvent(it)), "snapshot_complete");
    assert.equal(coord.stats().pollers, 1);

    await coord.unlock("alpha", "a1");
    assert.equal(summary(await nextEvent(it, 1000)), "unlocked alpha a1");
    await fx.pushGhotenLock(repo, "gamma", "cli-g");
    assert.equal(summary(await nextEvent(it, POLL_MS * 10)), "locked gamma cli-g g1");
    await coord.unlock("beta", "", { force: true });
    assert.equal(summary(await nextEvent(it, 1000)), "unlocked beta b1");

    const summaries = await coord.listWorkspaces();
    assert.deepEqual(
      summaries.map((s) => [s.name, s.lock?.id ?? null]),
      [
        ["default", null],
        ["gamma", "cli-g"],
      ],
    );
    ac.abort();
    assert.equal(coord.stats().pollers, 0);
  });

  test("watching all workspaces names a hashed lock tag from the workspace listing", async () => {
    const name = "team a/prod";
    const { coord: writer, repo } = fx.coordinator();
    await writer.putState(name, new Uint8Array([1]));
    const { coord } = fx.coordinator({ repo }); // knows no names yet
    const ac = new AbortController();
    const it = coord.watchLock(undefined, ac.signal)[Symbol.asyncIterator]();
    assert.equal(summary(await nextEvent(it)), "snapshot_complete");
    await fx.pushGhotenLock(repo, workspaceTag(name), "cli-hashed");
    assert.equal(summary(await nextEvent(it, POLL_MS * 10)), `locked ${name} cli-hashed g1`);
    ac.abort();
  });

  test("close() ends every open stream: iterators finish", async () => {
    const { coord } = fx.coordinator();
    const ac = new AbortController();
    const one = coord.watchLock("default", ac.signal)[Symbol.asyncIterator]();
    const all = coord.watchLock(undefined, ac.signal)[Symbol.asyncIterator]();
    await nextEvent(one);
    await nextEvent(one);
    await nextEvent(all);
    const pending = one.next();
    await coord.close();
    assert.equal((await pending).done, true);
    assert.equal((await all.next()).done, true);
    assert.deepEqual(coord.stats(), { watchers: 0, pollers: 0, lockWaiters: 0, queuedOperations: 0 });
    const late = coord.watchLock("default", new AbortController().signal)[Symbol.asyncIterator]();
    assert.equal((await late.next()).done, true);
  });

  test("a stream whose first status cannot be read fails its first next() and frees itself", async () => {
    const { coord, repo } = fx.coordinator();
    fx.proxy.fault({
      method: "GET",
      path: new RegExp(`/v2/${repo}/manifests/locked-default`),
      action: { kind: "status", status: 503, body: "" },
    });
    try {
      const it = coord.watchLock("default", new AbortController().signal)[Symbol.asyncIterator]();
      await assert.rejects(it.next(), (e: unknown) => (e as { code?: string }).code === "unavailable");
      assert.equal((await it.next()).done, true);
      assert.equal(coord.stats().watchers, 0);
      assert.equal(coord.stats().pollers, 0);

      // Read without promises, the same failure is the watch's `failure` once it has ended.
      const feed = coord.watchLock("default");
      await new Promise<void>((resolve) => feed.wait(resolve));
      assert.equal(feed.take(), undefined);
      assert.equal(feed.ended, true);
      assert.equal((feed.failure as { code?: string }).code, "unavailable");
    } finally {
      fx.proxy.clearFaults();
    }
  });

  test("read with take() and wait(), a change is handed over synchronously, inside the change itself", async () => {
    const { coord } = fx.coordinator({ watchPollIntervalMs: 60_000 });
    const watch = coord.watchLock("default");
    const taken: string[] = [];
    const drain = () => {
      for (let e = watch.take(); e !== undefined; e = watch.take()) taken.push(summary(e));
    };
    await new Promise<void>((resolve) => watch.wait(resolve));
    drain();
    assert.deepEqual(taken, ["snapshot default g0", "snapshot_complete"]);

    let lockResolved = false;
    let calledWith: { taken: string[]; lockResolved: boolean } | undefined;
    watch.wait(() => {
      drain();
      calledWith = { taken: [...taken], lockResolved };
    });
    await coord.lock("default", lockInfo("sync")).then(() => {
      lockResolved = true;
    });
    assert.deepEqual(calledWith?.taken.slice(2), ["locked default sync g1"]);
    assert.equal(calledWith?.lockResolved, false, "called before lock() resolved, within the change");

    let ended = false;
    watch.wait(() => {
      ended = watch.ended;
    });
    watch.close();
    assert.equal(ended, true, "close() wakes the waiting reader, which finds the watch ended");
    assert.equal(coord.stats().watchers, 0, "and frees it");
  });
});
