/**
 * With a lease (lockTTL), the holder locking again with its ID renews the lease in the registry,
 * keeping the generation, so a client that keeps renewing keeps its lock past the first lease end.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LockEvent } from "../../src/coordinator/types.ts";
import { LockError } from "../../src/oras/index.ts";
import { lockInfo, nextEvent, sleep, startCoordinatorFixture } from "./fixture.ts";
import { storedGeneration } from "./lock-annotation.ts";

const fx = await startCoordinatorFixture();

const TTL_MS = 1500;

describe("lease renewal", () => {
  test("locking again with the holder's ID renews the lease: a rival cannot take it after the first lease end", async () => {
    const { coord, repo } = fx.coordinator({ backend: { lockTTL: TTL_MS } });
    const first = await coord.lock("default", lockInfo("renewer", "alice@host"));
    assert.ok(first.leaseExpiresAt !== null);
    const stored = await storedGeneration(fx.registry.url, repo, "locked-default");
    assert.equal(stored.leaseExpiryMs, first.leaseExpiresAt);

    let last = first;
    // Renew at half the TTL, well past the first lease end.
    while (Date.now() < first.leaseExpiresAt + TTL_MS) {
      await sleep(TTL_MS / 2);
      const renewed = await coord.lock("default", lockInfo("renewer", "alice@host"));
      assert.ok(renewed.leaseExpiresAt !== null && last.leaseExpiresAt !== null);
      assert.ok(renewed.leaseExpiresAt > last.leaseExpiresAt, "the lease end moved forward");
      assert.equal(renewed.generation, first.generation, "a renewal keeps the generation");
      assert.deepEqual(renewed.info, first.info, "a renewal keeps the stored LockInfo");
      const g = await storedGeneration(fx.registry.url, repo, "locked-default");
      assert.equal(g.leaseExpiryMs, renewed.leaseExpiresAt, "the registry's lease_expiry moved too");
      assert.equal(g.generation, first.generation);
      assert.equal(g.holderId, "renewer");
      last = renewed;
    }
    assert.ok(Date.now() > first.leaseExpiresAt, "past the first lease end");
    await assert.rejects(coord.lock("default", lockInfo("rival", "bob@host")), (e: unknown) => {
      assert.ok(e instanceof LockError, String(e));
      assert.equal(e.holder.id, "renewer");
      return true;
    });
    // A second coordinator (a fresh process, or a ghoten CLI reading the same tag) sees it held too.
    const { coord: other } = fx.coordinator({ repo, backend: { lockTTL: TTL_MS } });
    await assert.rejects(other.lock("default", lockInfo("rival", "bob@host")), LockError);
    assert.equal((await coord.unlock("default", "renewer"))?.id, "renewer");
  });

  test("a renewal is not a lock change for watchers, and a waiting rival gets the lock only at the unlock", async () => {
    const { coord } = fx.coordinator({ backend: { lockTTL: TTL_MS } });
    const first = await coord.lock("w", lockInfo("keeper"));
    assert.ok(first.leaseExpiresAt !== null);
    const ac = new AbortController();
    const events = coord.watchLock("w", ac.signal)[Symbol.asyncIterator]();
    try {
      assert.equal((await nextEvent(events)).kind, "snapshot");
      assert.equal((await nextEvent(events)).kind, "snapshot_complete");
      let rivalDone = false;
      const rival = coord.lock("w", lockInfo("rival"), { waitMs: 20_000 }).finally(() => {
        rivalDone = true;
      });
      while (Date.now() < first.leaseExpiresAt + TTL_MS) {
        await sleep(TTL_MS / 2);
        await coord.lock("w", lockInfo("keeper"));
        assert.equal(rivalDone, false, "the waiting rival did not take a renewed lock");
      }
      await coord.unlock("w", "keeper");
      const unlocked: LockEvent = await nextEvent(events);
      assert.equal(unlocked.kind, "unlocked", "no event for the renewals, then the unlock");
      const got = await rival;
      assert.equal(got.id, "rival");
      const locked = await nextEvent(events);
      assert.equal(locked.kind === "locked" && locked.info?.id, "rival");
    } finally {
      ac.abort();
    }
  });

  test("without a lease, locking again answers from the verified read: one request, no write", async () => {
    const { coord, repo } = fx.coordinator();
    const first = await coord.lock("default", lockInfo("plain"));
    assert.equal(first.leaseExpiresAt, null);
    const from = fx.proxy.requests.length;
    assert.deepEqual(await coord.lock("default", lockInfo("plain")), first);
    assert.deepEqual(
      fx.requestsFor(repo, from).map((r) => `${r.method} ${r.status}`),
      ["GET 304"],
    );
  });
});
