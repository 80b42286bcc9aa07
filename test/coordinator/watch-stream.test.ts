import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LockEvent } from "../../src/coordinator/index.ts";
import { WatchStream } from "../../src/coordinator/watch-stream.ts";
import { lockInfo } from "./fixture.ts";

const locked = (ws: string, id: string): LockEvent => ({
  kind: "locked",
  workspace: ws,
  info: lockInfo(id),
  generation: 1,
  observedAt: 0,
});
const unlocked = (ws: string, id: string): LockEvent => ({
  kind: "unlocked",
  workspace: ws,
  info: lockInfo(id),
  generation: 1,
  observedAt: 0,
});
const snapshot = (ws: string, id?: string): LockEvent => ({
  kind: "snapshot",
  workspace: ws,
  info: id ? lockInfo(id) : undefined,
  generation: id ? 1 : 0,
  observedAt: 0,
});
const complete: LockEvent = { kind: "snapshot_complete", observedAt: 0 };

function label(e: LockEvent): string {
  return e.kind === "snapshot_complete" ? e.kind : `${e.kind}:${e.workspace}:${e.info?.id ?? "-"}`;
}

async function drain(s: WatchStream): Promise<string[]> {
  const out: string[] = [];
  for (let n = s.pending; n > 0; n--) {
    const r = await s.next();
    assert.equal(r.done, false);
    out.push(label(r.value));
  }
  return out;
}

describe("WatchStream buffering", () => {
  test("below capacity every event is kept, in order", async () => {
    const s = new WatchStream("a", 8, () => {});
    for (const e of [snapshot("a"), complete, locked("a", "1"), unlocked("a", "1"), locked("a", "2")])
      s.push(e);
    assert.deepEqual(await drain(s), [
      "snapshot:a:-",
      "snapshot_complete",
      "locked:a:1",
      "unlocked:a:1",
      "locked:a:2",
    ]);
    assert.equal(s.coalesced, 0);
  });

  test("at capacity a new event replaces the queued changes of its workspace; the latest status is last", async () => {
    const s = new WatchStream(undefined, 4, () => {});
    for (const e of [complete, locked("a", "1"), locked("b", "1"), unlocked("a", "1")]) s.push(e);
    s.push(unlocked("b", "1"));
    s.push(locked("a", "2"));
    s.push(locked("c", "1")); // a workspace with nothing queued is added even when full
    assert.deepEqual(await drain(s), ["snapshot_complete", "unlocked:b:1", "locked:a:2", "locked:c:1"]);
    assert.equal(s.coalesced, 3, "locked:b:1, then locked:a:1 and unlocked:a:1 were dropped");
  });

  test("a change for a workspace whose snapshot is still queued updates the snapshot in place", async () => {
    const s = new WatchStream("a", 2, () => {});
    s.push(snapshot("a", "1"));
    s.push(complete);
    s.push(unlocked("a", "1"));
    assert.deepEqual(await drain(s), ["snapshot:a:-", "snapshot_complete"]);
    s.push(locked("a", "2"));
    assert.deepEqual(await drain(s), ["locked:a:2"]);
  });

  test("taking while events arrive keeps them in order, lag and coalescing included", () => {
    const s = new WatchStream(undefined, 3, () => {});
    const take = () => {
      const e = s.take();
      return e === undefined ? undefined : label(e);
    };
    s.push(complete);
    assert.equal(take(), "snapshot_complete");
    assert.equal(take(), undefined);
    s.push(locked("a", "1"));
    s.push(locked("b", "1"));
    assert.equal(take(), "locked:a:1");
    s.push(unlocked("b", "1"));
    s.push(locked("c", "1"));
    assert.equal(s.pending, 3);
    // Full: the new change of b replaces both queued ones, behind c's.
    s.push(locked("b", "2"));
    assert.deepEqual([take(), take(), take()], ["locked:c:1", "locked:b:2", undefined]);
    assert.equal(s.coalesced, 2);
    for (let i = 0; i < 200; i++) {
      s.push(locked("a", String(i)));
      s.push(unlocked("a", String(i)));
      assert.deepEqual([take(), take()], [`locked:a:${i}`, `unlocked:a:${i}`]);
    }
    assert.equal(s.pending, 0);
  });

  test("a waiting next() gets the event at once; end() finishes it and every later one", async () => {
    let closed = 0;
    const s = new WatchStream("a", 2, () => closed++);
    const waiting = s.next();
    s.push(locked("a", "1"));
    assert.equal(label((await waiting).value as LockEvent), "locked:a:1");
    const pending = s.next();
    s.end();
    assert.equal((await pending).done, true);
    assert.equal((await s.next()).done, true);
    s.push(locked("a", "2"));
    assert.equal(s.pending, 0, "nothing is buffered after the end");
    s.end();
    assert.equal(closed, 1, "the close hook runs once");
  });

  test("fail() rejects the next read once, then the stream is done", async () => {
    const s = new WatchStream("a", 2, () => {});
    s.fail(new Error("registry down"));
    await assert.rejects(s.next(), /registry down/);
    assert.equal((await s.next()).done, true);
  });
});
