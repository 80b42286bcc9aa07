/**
 * One line of lock callers per workspace, in arrival order: callers that retry on their own (the
 * http backend) keep their place between calls, a freed lock is lent past an absent caller that is
 * not due back soon, and held for one that is. Timings are loose (hundreds of ms of margin).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LockResult, LockRetry } from "../../src/coordinator/types.ts";
import { LockError } from "../../src/oras/index.ts";
import { eventually, lockInfo, sleep, startCoordinatorFixture } from "./fixture.ts";

const fx = await startCoordinatorFixture();

const every = (ms: number): LockRetry => ({ delayMs: () => ms });

/** Records the order in which Lock calls resolve. */
function tracker() {
  const order: string[] = [];
  return {
    order,
    watch(name: string, p: Promise<LockResult>) {
      return p.then((r) => {
        order.push(name);
        return r;
      });
    },
  };
}

describe("the lock line", () => {
  test("a caller that retries keeps its place: back before the unlock, it is served before a later waiter", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("w", lockInfo("holder"));
    const retry = every(800);
    // Its first call waits 300 ms, is refused, and it is away for 800 ms.
    await assert.rejects(coord.lock("w", lockInfo("http-a"), { waitMs: 300, retry }), LockError);
    const t = tracker();
    const rpc = t.watch("rpc-b", coord.lock("w", lockInfo("rpc-b"), { waitMs: 20_000 }));
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "the RPC caller waiting");
    await sleep(800);
    const http = t.watch("http-a", coord.lock("w", lockInfo("http-a"), { waitMs: 5000, retry }));
    await eventually(() => coord.stats().lockWaiters === 2, 2000, "the returning caller waiting");
    await coord.unlock("w", "holder");
    await http;
    assert.deepEqual(t.order, ["http-a"], "the earlier arrival got the lock first");
    await coord.unlock("w", "http-a");
    await rpc;
    assert.deepEqual(t.order, ["http-a", "rpc-b"]);
    await coord.unlock("w", "rpc-b");
    await eventually(() => coord.stats().lockWaiters === 0, 2000, "nobody waiting");
  });

  test("a freed lock is lent past an absent caller not due back soon; back, it is next", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("w", lockInfo("holder"));
    const retry = every(1500);
    await assert.rejects(coord.lock("w", lockInfo("http-a"), { waitMs: 200, retry }), LockError);
    const t = tracker();
    const b = t.watch("rpc-b", coord.lock("w", lockInfo("rpc-b"), { waitMs: 20_000 }));
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "B waiting");
    // A is due back in about 1.5 s, longer than its own 200 ms wait: the lock is not kept idle.
    await coord.unlock("w", "holder");
    await b;
    const c = t.watch("rpc-c", coord.lock("w", lockInfo("rpc-c"), { waitMs: 20_000 }));
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "C waiting");
    const a = t.watch("http-a", coord.lock("w", lockInfo("http-a"), { waitMs: 10_000, retry }));
    await eventually(() => coord.stats().lockWaiters === 2, 2000, "A back and waiting");
    await coord.unlock("w", "rpc-b");
    await a;
    assert.deepEqual(t.order, ["rpc-b", "http-a"], "A, first in line, came before C, who came after it");
    await coord.unlock("w", "http-a");
    await c;
    await coord.unlock("w", "rpc-c");
  });

  test("a freed lock is held for an absent caller due back soon, not given to a later waiter meanwhile", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("w", lockInfo("holder"));
    await sleep(2000); // the holder's hold sets the usual hold time: long enough to wait for A
    const retry = every(1500);
    await assert.rejects(coord.lock("w", lockInfo("http-a"), { waitMs: 1000, retry }), LockError);
    const refusedAt = Date.now();
    const t = tracker();
    const b = t.watch("rpc-b", coord.lock("w", lockInfo("rpc-b"), { waitMs: 20_000 }));
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "B waiting");
    await sleep(Math.max(0, refusedAt + 1000 - Date.now()));
    // A is due back in about 0.5 s, within its own 1 s wait and half the holder's hold time.
    await coord.unlock("w", "holder");
    await sleep(300);
    assert.deepEqual(t.order, [], "B did not get the lock held for A");
    await assert.rejects(coord.lock("w", lockInfo("rpc-d")), (e: unknown) => {
      assert.ok(e instanceof LockError, String(e));
      assert.equal(e.holder.id, "http-a", "a newcomer is told whom the lock is held for");
      assert.match(e.message, /held for the next caller in line/);
      return true;
    });
    const a = await t.watch("http-a", coord.lock("w", lockInfo("http-a"), { waitMs: 1000, retry }));
    assert.equal(a.id, "http-a");
    await coord.unlock("w", "http-a");
    await b;
    assert.deepEqual(t.order, ["http-a", "rpc-b"]);
    await coord.unlock("w", "rpc-b");
  });

  test("a caller ahead of the one the lock is held for still goes first when it comes back", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("w", lockInfo("holder"));
    await sleep(2000);
    const t = tracker();
    // A is away for long, B (behind A) only briefly.
    await assert.rejects(coord.lock("w", lockInfo("http-a"), { waitMs: 200, retry: every(5000) }), LockError);
    await assert.rejects(
      coord.lock("w", lockInfo("http-b"), { waitMs: 1000, retry: every(1500) }),
      LockError,
    );
    const refusedB = Date.now();
    const c = t.watch("rpc-c", coord.lock("w", lockInfo("rpc-c"), { waitMs: 20_000 }));
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "C waiting");
    await sleep(Math.max(0, refusedB + 1000 - Date.now()));
    await coord.unlock("w", "holder"); // held for B, due back in about 0.5 s
    const back = Date.now();
    const a = await t.watch(
      "http-a",
      coord.lock("w", lockInfo("http-a"), { waitMs: 5000, retry: every(5000) }),
    );
    assert.equal(a.id, "http-a");
    // B's hold lasts until it is due back plus the 1 s grace, about 1.5 s from here.
    const tookMs = Date.now() - back;
    assert.ok(tookMs < 700, `A, first in line, took the lock held for B behind it at once (${tookMs} ms)`);
    await coord.unlock("w", "http-a");
    await t.watch("http-b", coord.lock("w", lockInfo("http-b"), { waitMs: 5000, retry: every(1500) }));
    await coord.unlock("w", "http-b");
    await c;
    assert.deepEqual(t.order, ["http-a", "http-b", "rpc-c"]);
    await coord.unlock("w", "rpc-c");
  });

  test("a lock held for an absent caller that does not come back goes to the next one after its grace", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("w", lockInfo("holder"));
    await sleep(2000);
    await assert.rejects(coord.lock("w", lockInfo("gone"), { waitMs: 1000, retry: every(500) }), LockError);
    const b = coord.lock("w", lockInfo("rpc-b"), { waitMs: 20_000 });
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "B waiting");
    await coord.unlock("w", "holder");
    const freedAt = Date.now();
    await b;
    // Due back 0.5 s after its refusal, plus the 1 s grace: the lock waited for it, then moved on.
    const waited = Date.now() - freedAt;
    assert.ok(waited > 400 && waited < 5000, `B got the lock ${waited} ms after the unlock`);
    await coord.unlock("w", "rpc-b");
    // Its place is gone too: a caller with that ID starts at the end of the line.
    assert.equal((await coord.lock("w", lockInfo("gone"))).id, "gone");
  });

  test("Lock with a wait keeps its meaning: RPC callers are served in arrival order and leave at their wait's end", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("w", lockInfo("holder"));
    const t = tracker();
    const calls = ["r1", "r2", "r3"].map((id) =>
      t.watch(id, coord.lock("w", lockInfo(id), { waitMs: 20_000 })),
    );
    const short = coord.lock("w", lockInfo("r4"), { waitMs: 300 });
    await assert.rejects(short, LockError);
    await eventually(() => coord.stats().lockWaiters === 3, 2000, "three waiting");
    await coord.unlock("w", "holder");
    for (const [i, id] of ["r1", "r2", "r3"].entries()) {
      await calls[i];
      await coord.unlock("w", id);
    }
    assert.deepEqual(t.order, ["r1", "r2", "r3"]);
    // r4 kept no place: it waits again from the end of a line that is now empty.
    assert.equal((await coord.lock("w", lockInfo("r4"))).id, "r4");
  });
});
