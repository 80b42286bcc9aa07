/**
 * OpenTofu re-sends LOCK with the same ID when an answer is lost; with a lease that renews it: the
 * registry's lease_expiry moves (the http backend's answer is the LockInfo, with no lease in it),
 * and a rival's LOCK after the first lease end is 423.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { storedGeneration } from "../coordinator/lock-annotation.ts";
import { startTfhttpFixture } from "./fixture.ts";
import { closeClients, newLockInfo, TofuHttpClient } from "./tofu-client.ts";

const TTL_MS = 1500;
const fx = await startTfhttpFixture({ backend: { lockTTL: TTL_MS } });
after(closeClients);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe("http backend LOCK with the holder's ID", () => {
  test("renews the lease in the registry; a rival LOCK after the first lease end is 423", async () => {
    const ws = fx.workspaceName("renew");
    const address = `${fx.url}/terraform/state/${ws}`;
    const holder = new TofuHttpClient({ address });
    const info = newLockInfo("OperationTypeApply", "carol@http");
    const res = await holder.lock(info);
    assert.equal(res.status, 200, res.text);
    assert.equal((JSON.parse(res.text) as { ID: string }).ID, info.ID);
    const first = await storedGeneration(fx.core.registry.url, fx.repository, `locked-${ws}`);
    assert.ok(first.leaseExpiryMs > 0, "the lock has a lease");
    let last = first;
    while (Date.now() < first.leaseExpiryMs + TTL_MS) {
      await sleep(TTL_MS / 2);
      const again = await holder.lock(info);
      assert.equal(again.status, 200, again.text);
      const stored = await storedGeneration(fx.core.registry.url, fx.repository, `locked-${ws}`);
      assert.ok(stored.leaseExpiryMs > last.leaseExpiryMs, "lease_expiry moved forward");
      assert.equal(stored.generation, first.generation, "the generation stays");
      assert.equal(stored.holderId, info.ID);
      last = stored;
    }
    assert.ok(Date.now() > first.leaseExpiryMs);
    const rival = await new TofuHttpClient({ address }).lock(newLockInfo("OperationTypeApply", "dave@http"));
    assert.equal(rival.status, 423, rival.text);
    assert.equal((JSON.parse(rival.text) as { ID: string }).ID, info.ID);
    assert.equal((await holder.unlock(info.ID)).status, 200);
  });
});
