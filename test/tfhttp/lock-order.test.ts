/**
 * A freed lock goes to callers in arrival order across protocols: an http backend LOCK that finds
 * the lock held waits in the same line as Lock-with-wait RPC callers, and an OpenTofu client that
 * retries after a 423 (same lock ID, 1 s doubling backoff) keeps its place between its retries.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { LockResult } from "../../src/coordinator/types.ts";
import { startTfhttpFixture } from "./fixture.ts";
import {
  closeClients,
  type GoLockInfo,
  newLockInfo,
  type RawResponse,
  TofuHttpClient,
} from "./tofu-client.ts";

const HOLD_MS = 3000;
const fx = await startTfhttpFixture({ route: { lockWaitMs: HOLD_MS } });
const short = await startTfhttpFixture({ route: { lockWaitMs: 400 } });
after(closeClients);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await sleep(10);
  }
}

const rpcInfo = (id: string) => ({
  id,
  operation: "OperationTypeApply",
  info: "",
  who: `${id}@rpc`,
  version: "",
  created: "",
  path: "",
});

/** OpenTofu's statemgr.LockWithContext over its http client: LOCK, and on 423 sleep 1 s, 2 s, … */
async function lockWithContext(
  cli: TofuHttpClient,
  info: GoLockInfo,
  timeoutMs: number,
): Promise<RawResponse> {
  const end = Date.now() + timeoutMs;
  let delay = 1000;
  for (;;) {
    const res = await cli.lock(info);
    if (res.status !== 423 || Date.now() + delay > end) return res;
    await sleep(delay);
    delay = Math.min(delay * 2, 16_000);
  }
}

describe("one line for http and RPC lockers", () => {
  test("with the lock held, an http LOCK that arrives before an RPC waiter gets the lock first after the unlock", async () => {
    const ws = fx.workspaceName("order");
    const c = fx.coordinator;
    await c.lock(ws, rpcInfo("holder"));
    const order: string[] = [];
    const cli = new TofuHttpClient({ address: `${fx.url}/terraform/state/${ws}` });
    const info = newLockInfo("OperationTypeApply", "http@tofu");
    const http = cli.lock(info).then((res) => {
      order.push(`http ${res.status}`);
      return res;
    });
    await until(() => c.stats().lockWaiters === 1, "the http LOCK waiting");
    const rpc = c.lock(ws, rpcInfo("rpc-waiter"), { waitMs: 20_000 }).then((r: LockResult) => {
      order.push("rpc");
      return r;
    });
    await until(() => c.stats().lockWaiters === 2, "the RPC caller waiting");
    await c.unlock(ws, "holder");
    const res = await http;
    assert.equal(res.status, 200, res.text);
    assert.equal((JSON.parse(res.text) as { ID: string }).ID, info.ID);
    await sleep(200);
    assert.deepEqual(order, ["http 200"], "the RPC waiter waits for the http holder");
    assert.equal((await cli.unlock(info.ID)).status, 200);
    assert.equal((await rpc).id, "rpc-waiter");
    assert.deepEqual(order, ["http 200", "rpc"]);
    await c.unlock(ws, "rpc-waiter");
  });

  test("a LOCK held the whole wait is 423 with the holder's LockInfo, so OpenTofu retries", async () => {
    const ws = short.workspaceName("refused");
    await short.coordinator.lock(ws, rpcInfo("holder"));
    const started = Date.now();
    const res = await new TofuHttpClient({ address: `${short.url}/terraform/state/${ws}` }).lock(
      newLockInfo(),
    );
    assert.equal(res.status, 423);
    assert.equal((JSON.parse(res.text) as { ID: string }).ID, "holder");
    assert.ok(Date.now() - started >= 350, "the LOCK waited in line first");
    await short.coordinator.unlock(ws, "holder");
  });

  test("an OpenTofu client retrying after 423 keeps its place: an RPC waiter that came later is served after it", async () => {
    const ws = short.workspaceName("retry");
    const c = short.coordinator;
    await c.lock(ws, rpcInfo("holder"));
    const cli = new TofuHttpClient({ address: `${short.url}/terraform/state/${ws}` });
    const info = newLockInfo("OperationTypeApply", "http@tofu");
    const order: string[] = [];
    const http = lockWithContext(cli, info, 30_000).then((res) => {
      order.push(`http ${res.status}`);
      return res;
    });
    await until(() => c.stats().lockWaiters === 1, "the first LOCK waiting");
    // Its first LOCK is answered 423 after 400 ms; the RPC caller arrives while it is away.
    await until(() => c.stats().lockWaiters === 0, "the first LOCK refused");
    const rpc = c.lock(ws, rpcInfo("rpc-waiter"), { waitMs: 30_000 }).then(() => order.push("rpc"));
    await until(() => c.stats().lockWaiters === 2, "the client back, waiting ahead of the RPC caller");
    await c.unlock(ws, "holder");
    const res = await http;
    assert.equal(res.status, 200, res.text);
    await sleep(200);
    assert.deepEqual(order, ["http 200"]);
    assert.equal((await cli.unlock(info.ID)).status, 200);
    await rpc;
    assert.deepEqual(order, ["http 200", "rpc"]);
    await c.unlock(ws, "rpc-waiter");
  });
});
