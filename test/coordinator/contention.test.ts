import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { lockInfo, startCoordinatorFixture, str, text } from "./fixture.ts";

const fx = await startCoordinatorFixture();

const CLIENTS = 50;
const ROUNDS = 2;

describe("contention", () => {
  test(`${CLIENTS} clients looping lock → read counter → write +1 → unlock lose no increment and never overlap`, async () => {
    const { coord } = fx.coordinator();
    await coord.putState("default", text("0"));
    let holding = 0;
    let maxHolding = 0;
    const holders: string[] = [];

    const client = async (n: number) => {
      for (let round = 0; round < ROUNDS; round++) {
        const id = `client-${n}-round-${round}`;
        await coord.lock("default", lockInfo(id, `client-${n}@test`), { waitMs: 60_000 });
        holding++;
        maxHolding = Math.max(maxHolding, holding);
        holders.push(id);
        try {
          const current = await coord.getState("default");
          const value = Number(str(current?.data ?? text("0")));
          // Yield so a client that did not really hold the lock would interleave here.
          await new Promise((r) => setImmediate(r));
          await coord.putState("default", text(String(value + 1)), { lockId: id });
        } finally {
          holding--;
          await coord.unlock("default", id);
        }
      }
    };

    await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
    const final = await coord.getState("default");
    assert.equal(str(final?.data ?? new Uint8Array()), String(CLIENTS * ROUNDS));
    assert.equal(maxHolding, 1, "no two clients held the lock at once");
    assert.equal(new Set(holders).size, CLIENTS * ROUNDS);
    assert.deepEqual(await coord.getLock("default"), { state: "unlocked" });
    assert.deepEqual(coord.stats(), { watchers: 0, pollers: 0, lockWaiters: 0, queuedOperations: 0 });
  });
});
