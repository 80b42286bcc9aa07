import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { createBackend } from "../../src/oras/index.ts";
import { startProxy } from "../harness/proxy.ts";
import { startRegistry } from "../harness/registry.ts";
import { registryTokenAuth, startTokenServer } from "../harness/token-server.ts";
import { countRequests, lockInfo, text } from "./fixture.ts";

/**
 * Registry requests per operation in steady state, on a registry with bearer-token auth (what
 * GHCR, Harbor and ECR use): the token is cached per scope, so no 401 round trips and no token
 * requests once warm. The seed spends 6 / 3 / 7 / 4 plus a token round trip per request.
 */
const tokens = await startTokenServer({ users: { ci: "s3cret" } });
const registry = await startRegistry({
  auth: registryTokenAuth(tokens),
});
const proxy = await startProxy(registry.url);
const backend = createBackend({
  repository: `${proxy.host}/tfstate/counts`,
  plainHTTP: true,
  username: "ci",
  password: "s3cret",
});
after(async () => {
  await backend.close();
  await proxy.stop();
  await registry.stop();
  await tokens.stop();
});

describe("request counts with token auth, steady state", () => {
  test("write ≤ 3, read ≤ 2 (1 unchanged), lock ≤ 3, unlock ≤ 2, and no token requests once warm", async () => {
    const mgr = backend.stateMgr("default");
    // Warm-up: learns the auth scheme, fetches a token per scope, checks the empty config blob.
    await mgr.put(text("warm"));
    await mgr.lock(lockInfo("warm"));
    await mgr.unlock("warm");
    const reader = createBackend({
      repository: `${proxy.host}/tfstate/counts`,
      plainHTTP: true,
      username: "ci",
      password: "s3cret",
    });
    await reader.stateMgr("default").get();
    const tokenRequests = tokens.requests.length;

    const write = await countRequests(proxy, () => mgr.put(text("state 2")));
    assert.ok(write.calls.length <= 3, write.calls.join(", "));
    const read = await countRequests(proxy, () => reader.stateMgr("default").get());
    assert.ok(read.calls.length <= 2, read.calls.join(", "));
    const unchanged = await countRequests(proxy, () => reader.stateMgr("default").get());
    assert.equal(unchanged.calls.length, 1, unchanged.calls.join(", "));
    const lock = await countRequests(proxy, () => mgr.lock(lockInfo("L")));
    assert.ok(lock.calls.length <= 3, lock.calls.join(", "));
    const unlock = await countRequests(proxy, () => mgr.unlock("L"));
    assert.ok(unlock.calls.length <= 2, unlock.calls.join(", "));

    assert.equal(tokens.requests.length, tokenRequests, "no token requests in steady state");
    assert.ok(
      [...write.calls, ...read.calls, ...lock.calls, ...unlock.calls].every((c) => !c.includes("401")),
      "no challenge round trips",
    );
    assert.ok(proxy.requests.every((r) => r.status !== 401));
    await reader.close();
  });
});
