/**
 * Credentials: the CLI sends HTTP Basic (`username`/`password` in the backend block). Every request
 * passes the server's one authentication point before the route runs, and the route's authorise hook
 * sees the caller, the workspace and the action.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { PermissionDeniedError } from "../../src/errors.ts";
import { basicAuthenticator } from "./basic-auth.ts";
import { startTfhttpFixture } from "./fixture.ts";
import { closeClients, newLockInfo, rawRequest, stateDoc, TofuHttpClient } from "./tofu-client.ts";

const fx = await startTfhttpFixture({
  authenticate: basicAuthenticator({ writer: "w-secret", reader: "r-secret" }),
  async authorize(_req, access) {
    if (access.principal?.name === "reader" && access.action !== "read") {
      throw new PermissionDeniedError(`${access.principal.name} may only read workspace ${access.workspace}`);
    }
    return undefined;
  },
});
after(closeClients);

test("without or with wrong credentials every route is 401 and nothing reaches the coordinator", async () => {
  const ws = fx.workspaceName("auth");
  const address = `${fx.url}/terraform/state/${ws}`;
  for (const cli of [
    new TofuHttpClient({ address }),
    new TofuHttpClient({ address, username: "writer", password: "wrong" }),
  ]) {
    assert.equal((await cli.get()).status, 401);
    assert.equal((await cli.lock(newLockInfo())).status, 401);
    assert.equal((await cli.put(stateDoc(1, "a"))).status, 401);
  }
  assert.equal(fx.requestLog.length, 0, "the route never ran");
  assert.equal((await fx.coordinator.getLock(ws)).state, "unlocked");
});

test("the CLI's Basic credentials let a writer lock, write and unlock, as that principal", async () => {
  const ws = fx.workspaceName("auth");
  const cli = new TofuHttpClient({
    address: `${fx.url}/terraform/state/${ws}`,
    username: "writer",
    password: "w-secret",
  });
  const info = newLockInfo();
  assert.equal((await cli.lock(info)).status, 200);
  assert.equal((await cli.put(stateDoc(1, "a"))).status, 200);
  assert.equal((await cli.unlock(info.ID)).status, 200);
  assert.deepEqual(new Set(fx.requestLog.map((r) => r.principal)), new Set(["writer"]));
});

test("the authorise hook refuses with 403 per action, naming the caller and workspace", async () => {
  const ws = fx.workspaceName("auth");
  const address = `${fx.url}/terraform/state/${ws}`;
  const writer = new TofuHttpClient({ address, username: "writer", password: "w-secret" });
  assert.equal((await writer.put(stateDoc(1, "a"))).status, 200);
  const reader = new TofuHttpClient({ address, username: "reader", password: "r-secret" });
  assert.equal((await reader.get()).status, 200);
  const refused = await reader.lock(newLockInfo());
  assert.equal(refused.status, 403);
  assert.match(refused.text, new RegExp(`reader may only read workspace ${ws}`));
  const write = await rawRequest(address, "POST", stateDoc(2, "a"), {
    authorization: `Basic ${Buffer.from("reader:r-secret").toString("base64")}`,
  });
  assert.equal(write.status, 403);
  assert.equal(JSON.parse((await reader.get()).text).serial, 1, "the refused write changed nothing");
});
