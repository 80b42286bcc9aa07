import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CanceledError, InvalidArgumentError, UnavailableError } from "../../src/errors.ts";
import { emptyLockInfo, LockError } from "../../src/oras/index.ts";
import { eventually, lockInfo, POLL_MS, sleep, startCoordinatorFixture } from "./fixture.ts";

const fx = await startCoordinatorFixture();

describe("lock and unlock through the coordinator", () => {
  test("locking again with the holder's ID succeeds and reports the same lock; another ID is refused", async () => {
    const { coord } = fx.coordinator();
    const first = await coord.lock("default", lockInfo("retry-me", "alice@host"));
    assert.equal(first.id, "retry-me");
    assert.equal(first.generation, 1);
    assert.equal(first.info.path, "state-default");
    assert.equal(first.info.who, "alice@host");
    const again = await coord.lock("default", lockInfo("retry-me", "alice@host"));
    assert.deepEqual(again, first);
    await assert.rejects(coord.lock("default", lockInfo("other", "bob@host")), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.holder.id, "retry-me");
      assert.equal(e.holder.who, "alice@host");
      assert.equal(e.generation, 1);
      return true;
    });
    const state = await coord.getLock("default");
    assert.equal(state.state, "locked");
    assert.equal(state.state === "locked" && state.info.id, "retry-me");
  });

  test("an empty lock ID gets a random UUID and an empty `created` the time of the call", async () => {
    const now = Date.parse("2026-11-25T12:00:00Z");
    const { coord } = fx.coordinator({ now: () => now });
    const result = await coord.lock("ws-auto", { ...emptyLockInfo(), who: "someone" });
    assert.match(result.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(result.info.id, result.id);
    assert.equal(result.info.created, "2026-11-25T12:00:00.000Z");
    assert.equal(await coord.unlock("ws-auto", result.id).then((i) => i?.id), result.id);
  });

  test("unlock returns the released LockInfo, null when already free; a wrong ID is refused; force is explicit", async () => {
    const { coord } = fx.coordinator();
    assert.equal(await coord.unlock("default", "nobody"), null);
    await coord.lock("default", lockInfo("mine", "alice@host"));
    await assert.rejects(coord.unlock("default", "not-mine"), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.holder.id, "mine");
      assert.match(e.message, /lock ID mismatch/);
      return true;
    });
    await assert.rejects(coord.unlock("default", ""), InvalidArgumentError);
    const released = await coord.unlock("default", "", { force: true });
    assert.equal(released?.id, "mine");
    assert.equal(released?.who, "alice@host");
    assert.deepEqual(await coord.getLock("default"), { state: "unlocked" });
    assert.equal(await coord.unlock("default", "mine"), null);
  });

  test("a waiting Lock returns as soon as the holder unlocks through the coordinator", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("default", lockInfo("holder"));
    const waiting = coord.lock("default", lockInfo("waiter"), { waitMs: 10_000 });
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "the second Lock waiting");
    const releasedAt = Date.now();
    await coord.unlock("default", "holder");
    const got = await waiting;
    assert.equal(got.id, "waiter");
    assert.ok(Date.now() - releasedAt < 1000, "woken at once, not by polling");
    assert.equal(coord.stats().lockWaiters, 0);
    assert.equal(coord.stats().pollers, 0, "the waiter's poller stopped with it");
  });

  test("a waiting Lock ends with a LockError naming the holder when the wait runs out", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("default", lockInfo("stays", "alice@host"));
    const started = Date.now();
    await assert.rejects(coord.lock("default", lockInfo("patient"), { waitMs: 400 }), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.holder.id, "stays");
      assert.equal(e.holder.who, "alice@host");
      assert.match(e.message, /after waiting \d+ ms/);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= 380 && took < 2000, `waited ${took} ms`);
    assert.equal(coord.stats().lockWaiters, 0);
  });

  test("the wait is capped by maxLockWaitMs and by the call's deadline", async () => {
    const { coord } = fx.coordinator({ maxLockWaitMs: 300 });
    await coord.lock("default", lockInfo("stays"));
    let started = Date.now();
    await assert.rejects(coord.lock("default", lockInfo("w"), { waitMs: 60_000 }), LockError);
    assert.ok(Date.now() - started < 1500, "capped at maxLockWaitMs");
    started = Date.now();
    await assert.rejects(
      coord.lock("default", lockInfo("w"), { waitMs: 250, deadline: Date.now() + 100 }),
      LockError,
    );
    assert.ok(Date.now() - started < 240, "cut by the deadline");
  });

  test("a waiting Lock is woken by a ghoten CLI removing its lock straight in the registry (the poller sees it)", async () => {
    const { coord, repo } = fx.coordinator();
    const digest = await fx.pushGhotenLock(repo, "default", "cli-lock");
    const waiting = coord.lock("default", lockInfo("after-cli"), { waitMs: 10_000 });
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "the Lock waiting");
    assert.equal(coord.stats().pollers, 1);
    const removedAt = Date.now();
    await fx.deleteManifest(repo, digest);
    const got = await waiting;
    assert.equal(got.id, "after-cli");
    assert.ok(Date.now() - removedAt < POLL_MS * 30, "found by polling, long before the wait ends");
  });

  test("a waiting Lock takes over a lock whose lease ran out, when it runs out", async () => {
    const { coord } = fx.coordinator({ backend: { lockTTL: 400 } });
    const held = await coord.lock("default", lockInfo("lapses"));
    assert.ok(held.leaseExpiresAt !== null);
    const got = await coord.lock("default", lockInfo("next"), { waitMs: 5000 });
    assert.equal(got.id, "next");
    assert.ok(Date.now() >= held.leaseExpiresAt, "not before the lease ended");
    assert.ok(Date.now() - held.leaseExpiresAt < 1000, "soon after it ended");
    assert.equal(got.generation, 2, "a takeover counts up the generation");
  });

  test("waiters get the lock in the order they came (FIFO)", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("default", lockInfo("w0"));
    const order: string[] = [];
    const waits: Promise<void>[] = [];
    for (let i = 1; i <= 4; i++) {
      const id = `w${i}`;
      waits.push(
        coord.lock("default", lockInfo(id), { waitMs: 10_000 }).then(async () => {
          order.push(id);
          await sleep(20);
          await coord.unlock("default", id);
        }),
      );
      await eventually(() => coord.stats().lockWaiters === i, 2000, `waiter ${id} queued`);
    }
    await coord.unlock("default", "w0");
    await Promise.all(waits);
    assert.deepEqual(order, ["w1", "w2", "w3", "w4"]);
  });

  test("a waiter whose caller cancels leaves the queue with CanceledError and takes no lock", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("default", lockInfo("holder"));
    const ac = new AbortController();
    const waiting = coord.lock("default", lockInfo("gives-up"), { waitMs: 10_000, signal: ac.signal });
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "the Lock waiting");
    ac.abort();
    await assert.rejects(waiting, CanceledError);
    assert.equal(coord.stats().lockWaiters, 0);
    await coord.unlock("default", "holder");
    assert.deepEqual(await coord.getLock("default"), { state: "unlocked" });
  });

  test("deleting a workspace locked by someone else needs force; the holder or force may", async () => {
    const { coord } = fx.coordinator();
    await coord.createWorkspace("doomed");
    await coord.lock("doomed", lockInfo("keeper"));
    await assert.rejects(
      coord.deleteWorkspace("doomed"),
      (e: unknown) => e instanceof LockError && e.holder.id === "keeper",
    );
    await assert.rejects(coord.deleteWorkspace("doomed", { lockId: "other" }), LockError);
    await coord.deleteWorkspace("doomed", { lockId: "keeper" });
    assert.ok(!(await coord.listWorkspaceNames()).includes("doomed"));
    assert.deepEqual(await coord.getLock("doomed"), { state: "unlocked" });

    await coord.createWorkspace("doomed2");
    await coord.lock("doomed2", lockInfo("keeper"));
    await coord.deleteWorkspace("doomed2", { force: true });
    assert.deepEqual(await coord.getLock("doomed2"), { state: "unlocked" });
    await assert.rejects(coord.deleteWorkspace("default"), InvalidArgumentError);
  });

  test("close() rejects waiting Lock calls with UnavailableError and refuses new calls", async () => {
    const { coord } = fx.coordinator();
    await coord.lock("default", lockInfo("holder"));
    const waiting = coord.lock("default", lockInfo("waiter"), { waitMs: 10_000 });
    await eventually(() => coord.stats().lockWaiters === 1, 2000, "the Lock waiting");
    await coord.close();
    await assert.rejects(
      waiting,
      (e: unknown) => e instanceof UnavailableError && /shutting down/.test(e.message),
    );
    await assert.rejects(coord.getState("default"), UnavailableError);
    assert.deepEqual(coord.stats(), { watchers: 0, pollers: 0, lockWaiters: 0, queuedOperations: 0 });
  });
});
