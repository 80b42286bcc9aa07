/**
 * Registry requests of Lock and Unlock through the coordinator when it has just verified the lock
 * in the workspace's turn: the core takes that read instead of reading the lock tag again.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { lockInfo, startCoordinatorFixture, text } from "./fixture.ts";
import { storedGeneration } from "./lock-annotation.ts";

const fx = await startCoordinatorFixture();
const HOUR = 60 * 60 * 1000;

/** `METHOD tag-or-digest status` of each request for `repo` since `from`. */
function callsFor(repo: string, from: number): string[] {
  return fx
    .requestsFor(repo, from)
    .map(
      (r) =>
        `${r.method} ${r.path.replace(/^manifests\/sha256:[0-9a-f]{64}$/, "manifests/<digest>")} ${r.status}`,
    );
}

describe("a verified read is not repeated by the core", () => {
  test("a first Lock on a workspace costs 3 requests (verify, write, verify the write), its Unlock 2", async () => {
    const { coord, repo } = fx.coordinator();
    // The empty config blob is known from here on; the lock of "default" has not been read yet.
    await coord.putState("warm-up", text("{}"));
    let from = fx.proxy.requests.length;
    await coord.lock("default", lockInfo("me"));
    assert.deepEqual(callsFor(repo, from), [
      "GET manifests/locked-default 404",
      "PUT manifests/locked-default 201",
      "GET manifests/locked-default 200",
    ]);
    from = fx.proxy.requests.length;
    assert.equal((await coord.unlock("default", "me"))?.id, "me");
    assert.deepEqual(callsFor(repo, from), [
      "GET manifests/locked-default 304",
      "DELETE manifests/<digest> 202",
    ]);
    assert.equal((await coord.getLock("default")).state, "unlocked");
  });

  test("taking over a lock whose lease ran out costs 4: verify, delete it by digest, write, verify", async () => {
    const repo = fx.repo();
    const past = fx.backend(repo, { lockTTL: HOUR, now: () => Date.now() - 2 * HOUR });
    await past.stateMgr("default").lock(lockInfo("expired", "bob@host"));
    const { coord } = fx.coordinator({ repo, backend: { lockTTL: HOUR } });
    await coord.putState("warm-up", text("{}")); // the empty config blob is known from here on
    const from = fx.proxy.requests.length;
    const taken = await coord.lock("default", lockInfo("taker"));
    assert.equal(taken.id, "taker");
    assert.equal(taken.generation, 2, "the generation goes on from the expired lock's");
    assert.deepEqual(callsFor(repo, from), [
      "GET manifests/locked-default 200",
      "DELETE manifests/<digest> 202",
      "PUT manifests/locked-default 201",
      "GET manifests/locked-default 200",
    ]);
  });

  test("the holder renewing a lease this coordinator has not seen yet costs 3: verify, write, verify", async () => {
    const repo = fx.repo();
    const first = fx.coordinator({ repo, backend: { lockTTL: HOUR } }).coord;
    const held = await first.lock("default", lockInfo("renewer"));
    // Another replica (or the service after a restart) sees the lock for the first time.
    const { coord } = fx.coordinator({ repo, backend: { lockTTL: HOUR } });
    await coord.putState("warm-up", text("{}")); // the empty config blob is known from here on
    const from = fx.proxy.requests.length;
    const renewed = await coord.lock("default", lockInfo("renewer"));
    assert.equal(renewed.generation, held.generation, "a renewal keeps the generation");
    assert.ok(renewed.leaseExpiresAt !== null && held.leaseExpiresAt !== null);
    assert.ok(renewed.leaseExpiresAt >= held.leaseExpiresAt, "the lease end moved forward");
    assert.equal(
      (await storedGeneration(fx.registry.url, repo, "locked-default")).leaseExpiryMs,
      renewed.leaseExpiresAt,
    );
    assert.deepEqual(callsFor(repo, from), [
      "GET manifests/locked-default 200",
      "PUT manifests/locked-default 201",
      "GET manifests/locked-default 200",
    ]);
  });
});
