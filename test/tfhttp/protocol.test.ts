/**
 * The http backend protocol as OpenTofu speaks it, end to end through the real HTTP server, the real
 * coordinator and a real registry: a scripted CLI session, then every malformed input.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTfhttpFixture } from "./fixture.ts";
import {
  closeClients,
  forceUnlockBody,
  type GoLockInfo,
  md5Base64,
  newLockInfo,
  type RawResponse,
  rawRequest,
  stateDoc,
  TofuHttpClient,
} from "./tofu-client.ts";

const MAX_STATE_SIZE = 64 * 1024;
const fx = await startTfhttpFixture({ maxStateSize: MAX_STATE_SIZE });
after(closeClients);

function json(res: RawResponse): Record<string, unknown> {
  assert.match(String(res.headers["content-type"]), /^application\/json/, `JSON answer, got ${res.text}`);
  return JSON.parse(res.text) as Record<string, unknown>;
}

function errorOf(res: RawResponse): string {
  const body = json(res);
  assert.equal(typeof body.error, "string", `an {"error": ...} body, got ${res.text}`);
  return body.error as string;
}

/** The holder as the CLI parses it from a 409/423: Go's seven keys, in Go's order. */
function assertHolder(res: RawResponse, expected: GoLockInfo, workspaceTag: string) {
  const body = json(res);
  assert.deepEqual(Object.keys(body), ["ID", "Operation", "Info", "Who", "Version", "Created", "Path"]);
  assert.deepEqual(body, { ...expected, Path: `state-${workspaceTag}` });
}

describe("a CLI session: init, plan, apply, a blocked second client, force-unlock, destroy", () => {
  const lineage = "4b4d6d0e-6f1a-4c42-9a53-0e0c4f1b2a77";
  let address: string;
  let ws: string;

  before(() => {
    ws = fx.workspaceName("session");
    address = `${fx.url}/terraform/state/${ws}`;
  });

  test("init: GET of a workspace with no state is 404 (the CLI reads it as no state)", async () => {
    const res = await new TofuHttpClient({ address }).get();
    assert.equal(res.status, 404);
    assert.match(errorOf(res), new RegExp(`workspace "${ws}" has no state`));
  });

  test("plan: LOCK is 200 with the stored LockInfo, a retried LOCK is 200, GET 404, UNLOCK 200", async () => {
    const cli = new TofuHttpClient({ address });
    const info = newLockInfo("OperationTypePlan");
    const locked = await cli.lock(info);
    assert.equal(locked.status, 200, locked.text);
    assertHolder(locked, info, ws);
    // go-retryablehttp retries a request whose answer was lost: the same ID again is success.
    const again = await cli.lock(info);
    assert.equal(again.status, 200, again.text);
    assertHolder(again, info, ws);
    assert.equal((await cli.get()).status, 404);
    const unlocked = await cli.unlock(info.ID);
    assert.equal(unlocked.status, 200, unlocked.text);
    assert.equal((await fx.coordinator.getLock(ws)).state, "unlocked");
  });

  test("apply: LOCK, GET, POST ?ID= for each intermediate write, each readable with its MD5, UNLOCK", async () => {
    const seen = fx.requestLog.length;
    const cli = new TofuHttpClient({ address });
    const info = newLockInfo("OperationTypeApply");
    assert.equal((await cli.lock(info)).status, 200);
    assert.equal((await cli.get()).status, 404);
    for (let serial = 1; serial <= 3; serial++) {
      const doc = stateDoc(serial, lineage, [
        { mode: "managed", type: "terraform_data", name: `r${serial}` },
      ]);
      const put = await cli.put(doc);
      assert.equal(put.status, 200, put.text);
      const got = await cli.get();
      assert.equal(got.status, 200);
      assert.equal(got.text, doc);
      assert.equal(got.headers["content-md5"], md5Base64(doc));
      assert.match(String(got.headers["content-type"]), /^application\/json/);
      assert.equal(got.headers["cache-control"], "no-store");
    }
    assert.deepEqual(
      fx.requestLog
        .slice(seen)
        .filter((r) => r.method === "POST")
        .map((r) => r.query),
      [`ID=${info.ID}`, `ID=${info.ID}`, `ID=${info.ID}`],
    );
    assert.equal((await cli.unlock(info.ID)).status, 200);
  });

  test("writes on a locked workspace need the holder's ID: none or a wrong one is 409 with the holder", async () => {
    const holder = new TofuHttpClient({ address });
    const info = newLockInfo();
    assert.equal((await holder.lock(info)).status, 200);
    const before = await holder.get();

    const noId = await new TofuHttpClient({ address }).put(stateDoc(99, lineage));
    assert.equal(noId.status, 409);
    assertHolder(noId, info, ws);
    const wrongId = await rawRequest(`${address}?ID=someone-else`, "POST", stateDoc(99, lineage));
    assert.equal(wrongId.status, 409);
    assertHolder(wrongId, info, ws);
    const del = await new TofuHttpClient({ address }).delete();
    assert.equal(del.status, 409);
    assertHolder(del, info, ws);

    assert.equal((await holder.get()).text, before.text, "the refused writes changed nothing");
    assert.equal((await holder.unlock(info.ID)).status, 200);
  });

  let crashed: { cli: TofuHttpClient; info: GoLockInfo };

  test("a second client is blocked with 423 and the first client's LockInfo", async () => {
    const first = new TofuHttpClient({ address });
    const info = newLockInfo("OperationTypeApply", "alice@laptop");
    assert.equal((await first.lock(info)).status, 200);
    crashed = { cli: first, info };

    const second = new TofuHttpClient({ address });
    const blocked = await second.lock(newLockInfo("OperationTypeApply", "bob@ci"));
    assert.equal(blocked.status, 423);
    assertHolder(blocked, info, ws);
    assert.equal(second.lockId, "", "the blocked client holds nothing");
    // It retries with backoff (-lock-timeout): still 423, never a wait on the server.
    const retried = await second.lock(newLockInfo("OperationTypeApply", "bob@ci"));
    assert.equal(retried.status, 423);
  });

  test("force-unlock: a zero LockInfo with another ID is 409 with the holder; with the holder's ID 200", async () => {
    // `tofu force-unlock` runs in a fresh process: no LockInfo of its own, only the ID typed in.
    const wrong = await new TofuHttpClient({ address }).unlock("not-the-holder");
    assert.equal(wrong.status, 409);
    assertHolder(wrong, crashed.info, ws);

    const forced = await new TofuHttpClient({ address }).unlock(crashed.info.ID);
    assert.equal(forced.status, 200, forced.text);
    assert.equal((await fx.coordinator.getLock(ws)).state, "unlocked");
    assert.ok(
      fx.logLines.some((l) => l.msg === "force-unlock over the http backend" && l.lockId === crashed.info.ID),
      "the force-unlock is logged",
    );
  });

  test("the client whose lock was forced away cannot write with its stale ID (409 naming the problem)", async () => {
    const res = await crashed.cli.put(stateDoc(50, lineage));
    assert.equal(res.status, 409);
    assert.match(errorOf(res), new RegExp(crashed.info.ID));
  });

  test("unlocking a lock that is already free is 200", async () => {
    const res = await rawRequest(`${address}/lock`, "UNLOCK", forceUnlockBody(crashed.info.ID));
    assert.equal(res.status, 200);
  });

  test("Terraform users without force-unlock over http can send the ID alone (curl -X UNLOCK -d)", async () => {
    const info = newLockInfo();
    assert.equal((await new TofuHttpClient({ address }).lock(info)).status, 200);
    const res = await rawRequest(`${address}/lock`, "UNLOCK", JSON.stringify({ ID: info.ID }), {
      "content-type": "application/x-www-form-urlencoded",
      "content-md5": null,
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(JSON.parse(res.text).ID, info.ID, "the answer is the lock that was released");
    assert.equal((await fx.coordinator.getLock(ws)).state, "unlocked");
  });

  test("destroy: LOCK, GET, POST ?ID= with no resources, UNLOCK; then DELETE is 200 and GET 404", async () => {
    const cli = new TofuHttpClient({ address });
    const info = newLockInfo("OperationTypeApply");
    assert.equal((await cli.lock(info)).status, 200);
    const current = await cli.get();
    assert.equal(current.status, 200);
    const serial = (JSON.parse(current.text) as { serial: number }).serial;
    const empty = stateDoc(serial + 1, lineage);
    assert.equal((await cli.put(empty)).status, 200);
    assert.equal((await cli.get()).text, empty);
    assert.equal((await cli.unlock(info.ID)).status, 200);

    const del = await cli.delete();
    assert.equal(del.status, 200, del.text);
    assert.equal((await cli.get()).status, 404);
    assert.equal((await cli.delete()).status, 200, "deleting again is still 200");
  });
});

describe("GitLab's convention: lock_method POST, unlock_method DELETE, update_method PUT", () => {
  test("lock, write, conflict and unlock work the same way", async () => {
    const ws = fx.workspaceName("gitlab");
    const address = `${fx.url}/terraform/state/${ws}`;
    const cfg = { address, updateMethod: "PUT", lockMethod: "POST", unlockMethod: "DELETE" };
    const cli = new TofuHttpClient(cfg);
    const info = newLockInfo();
    const locked = await cli.lock(info);
    assert.equal(locked.status, 200, locked.text);
    const other = await new TofuHttpClient(cfg).lock(newLockInfo());
    assert.equal(other.status, 423);
    assertHolder(other, info, ws);
    const put = await cli.put(stateDoc(1, "l"));
    assert.equal(put.status, 200, put.text);
    assert.equal((await new TofuHttpClient(cfg).put(stateDoc(2, "l"))).status, 409);
    const unlocked = await cli.unlock(info.ID);
    assert.equal(unlocked.status, 200, unlocked.text);
    assert.equal((await cli.get()).text, stateDoc(1, "l"));
  });
});

describe("workspace names in the path", () => {
  test("percent-encoded names (a slash, non-ASCII) are decoded and are the coordinator's names", async () => {
    const name = `team/${fx.workspaceName("café")}`;
    const address = `${fx.url}/terraform/state/${encodeURIComponent(name)}`;
    const cli = new TofuHttpClient({ address });
    const info = newLockInfo();
    assert.equal((await cli.lock(info)).status, 200);
    assert.equal((await cli.put(stateDoc(1, "x"))).status, 200);
    const stored = await fx.coordinator.getState(name);
    assert.equal(Buffer.from(stored?.data ?? []).toString(), stateDoc(1, "x"));
    const lock = await fx.coordinator.getLock(name);
    assert.equal(lock.state === "locked" && lock.info.id, info.ID);
    assert.equal((await cli.unlock(info.ID)).status, 200);
  });

  test("a malformed percent-escape is 400 naming it", async () => {
    const res = await rawRequest(`${fx.url}/terraform/state/bad%zzname`, "GET");
    assert.equal(res.status, 400);
    assert.match(errorOf(res), /malformed percent-escape "%zz" at position 3/);
  });

  test("an escape that decodes to invalid UTF-8 is 400 naming UTF-8", async () => {
    const res = await rawRequest(
      `${fx.url}/terraform/state/bad%FFname/lock`,
      "LOCK",
      JSON.stringify(newLockInfo()),
    );
    assert.equal(res.status, 400);
    assert.match(errorOf(res), /not valid UTF-8/);
  });

  test("names the workspace rules refuse are 400 with their reason", async () => {
    const control = await rawRequest(`${fx.url}/terraform/state/a%07b`, "GET");
    assert.equal(control.status, 400);
    assert.match(errorOf(control), /control character U\+0007/);
    const empty = await rawRequest(`${fx.url}/terraform/state/`, "GET");
    assert.equal(empty.status, 400);
    assert.match(errorOf(empty), /workspace name is empty/);
    const long = await rawRequest(`${fx.url}/terraform/state/${"x".repeat(300)}`, "GET");
    assert.equal(long.status, 400);
    assert.match(errorOf(long), /300 bytes long; the limit is 255 bytes/);
  });

  test("other paths under the prefix are 404 naming the two routes", async () => {
    const res = await rawRequest(`${fx.url}/terraform/state/a/b/c`, "GET");
    assert.equal(res.status, 404);
    assert.match(
      errorOf(res),
      /\/terraform\/state\/\{workspace\} and \/terraform\/state\/\{workspace\}\/lock/,
    );
  });
});

describe("bad requests", () => {
  let address: string;
  before(() => {
    address = `${fx.url}/terraform/state/${fx.workspaceName("bad")}`;
  });

  test("a Content-MD5 that does not match the body is 400 and nothing is written", async () => {
    const res = await rawRequest(address, "POST", stateDoc(1, "x"), { "content-md5": md5Base64("other") });
    assert.equal(res.status, 400);
    assert.match(errorOf(res), /Content-MD5 .* does not match the body/);
    assert.equal((await rawRequest(address, "GET")).status, 404);
  });

  test("a malformed Content-MD5 is 400 (hex is not base64)", async () => {
    const res = await rawRequest(address, "POST", stateDoc(1, "x"), {
      "content-md5": "d41d8cd98f00b204e9800998ecf8427e",
    });
    assert.equal(res.status, 400);
    assert.match(errorOf(res), /Content-MD5 .* is malformed/);
  });

  test("Content-MD5 is optional, but an empty one is malformed", async () => {
    const doc = stateDoc(1, "no-md5");
    const empty = await rawRequest(address, "PUT", doc, { "content-md5": "" });
    assert.equal(empty.status, 400);
    assert.match(errorOf(empty), /Content-MD5 "" is malformed/);
    const bare = await rawRequest(address, "PUT", doc, { "content-md5": null });
    assert.equal(bare.status, 200, bare.text);
  });

  test("a state over the size limit is 413 naming the limit, declared or streamed", async () => {
    const big = "x".repeat(MAX_STATE_SIZE + 1);
    const declared = await rawRequest(address, "POST", big);
    assert.equal(declared.status, 413);
    assert.match(errorOf(declared), new RegExp(`limit of ${MAX_STATE_SIZE} bytes`));
    const streamed = await rawRequest(address, "POST", big, {
      "content-length": null,
      "transfer-encoding": "chunked",
    });
    assert.equal(streamed.status, 413);
    assert.match(errorOf(streamed), new RegExp(`state is larger than the limit of ${MAX_STATE_SIZE} bytes`));
    // The connection stays usable for the next request.
    assert.equal((await rawRequest(address, "GET")).status, 200);
  });

  test("a body far over the limit is refused without reading it, and the client gets the 413", async () => {
    const started = performance.now();
    const res = await rawRequest(address, "POST", Buffer.alloc(20 * 1024 * 1024, 0x20));
    assert.equal(res.status, 413);
    assert.match(errorOf(res), /Content-Length 20971520\) is larger than the limit of 65536 bytes/);
    assert.ok(performance.now() - started < 5_000, "answered without waiting for the whole upload");
  });

  test("an empty state write is 400", async () => {
    const res = await rawRequest(address, "POST", "");
    assert.equal(res.status, 400);
    assert.match(errorOf(res), /no body/);
  });

  test("a repeated ID query parameter is 400", async () => {
    const res = await rawRequest(`${address}?ID=a&ID=b`, "POST", stateDoc(1, "x"));
    assert.equal(res.status, 400);
    assert.match(errorOf(res), /ID query parameter is given 2 times/);
  });

  test("malformed lock bodies are 400 naming the problem or the field", async () => {
    const lock = `${address}/lock`;
    const cases: Array<[string, RegExp]> = [
      ["{not json", /lock info is not valid JSON/],
      ["[]", /lock info must be a JSON object/],
      [JSON.stringify({ ...newLockInfo(), ID: 42 }), /lock info field "ID" must be a string/],
      [JSON.stringify({ ...newLockInfo(), Who: ["x"] }), /lock info field "Who" must be a string/],
      [JSON.stringify({ ...newLockInfo(), ID: "" }), /lock info field "ID" is missing or empty/],
      [JSON.stringify({ Operation: "OperationTypeApply" }), /lock info field "ID" is missing or empty/],
      [
        JSON.stringify({ ...newLockInfo(), Created: "yesterday" }),
        /lock info field "Created" must be an RFC 3339 time/,
      ],
    ];
    for (const [body, message] of cases) {
      const res = await rawRequest(lock, "LOCK", body);
      assert.equal(res.status, 400, body);
      assert.match(errorOf(res), message);
    }
    const noBody = await rawRequest(lock, "UNLOCK");
    assert.equal(noBody.status, 400);
    assert.match(errorOf(noBody), /the unlock request has no body/);
    assert.equal((await fx.coordinator.getLock(fx.workspaceName("bad"))).state, "unlocked");
  });

  test("a lock body over its limit is 413", async () => {
    const res = await rawRequest(
      `${address}/lock`,
      "LOCK",
      JSON.stringify({ ...newLockInfo(), Info: "i".repeat(70_000) }),
    );
    assert.equal(res.status, 413);
    assert.match(errorOf(res), /lock info .*limit of 65536 bytes/);
  });

  test("unsupported methods are 405 with Allow", async () => {
    const onState = await rawRequest(address, "PATCH", "{}");
    assert.equal(onState.status, 405);
    assert.equal(onState.headers.allow, "GET, HEAD, POST, PUT, DELETE");
    assert.match(errorOf(onState), /method "PATCH" is not allowed/);
    const onLock = await rawRequest(`${address}/lock`, "GET");
    assert.equal(onLock.status, 405);
    assert.equal(onLock.headers.allow, "LOCK, UNLOCK, POST, DELETE");
  });

  test("HEAD answers GET's headers without a body", async () => {
    const doc = stateDoc(7, "head");
    assert.equal((await rawRequest(address, "POST", doc)).status, 200);
    const res = await rawRequest(address, "HEAD");
    assert.equal(res.status, 200);
    assert.equal(res.headers["content-md5"], md5Base64(doc));
    assert.equal(res.headers["content-length"], String(Buffer.byteLength(doc)));
    assert.equal(res.body.byteLength, 0);
  });
});

describe("registry failures reach the CLI as statuses it understands", () => {
  after(() => fx.core.proxy.clearFaults());

  test("a registry that keeps failing is 503 naming the failure", async () => {
    const address = `${fx.url}/terraform/state/${fx.workspaceName("down")}`;
    fx.core.proxy.fault({
      method: "GET",
      path: /\/manifests\/state-down-/,
      action: { kind: "status", status: 503 },
    });
    const res = await rawRequest(address, "GET");
    fx.core.proxy.clearFaults();
    assert.equal(res.status, 503);
    assert.match(errorOf(res), /state-down-/);
  });

  test("state whose blob fails its digest check is 500 saying data loss, never 404", async () => {
    const ws = fx.workspaceName("damaged");
    // Written by another process, so the coordinator has nothing cached and must read the blob.
    await fx.core
      .backend(fx.repository)
      .stateMgr(ws)
      .put(new TextEncoder().encode(stateDoc(1, "d")));
    fx.core.proxy.fault({
      method: "GET",
      path: /\/blobs\/sha256:/,
      action: { kind: "status", status: 200, body: stateDoc(2, "tampered") },
    });
    const res = await rawRequest(`${fx.url}/terraform/state/${ws}`, "GET");
    fx.core.proxy.clearFaults();
    assert.equal(res.status, 500);
    assert.match(errorOf(res), /^data loss: .*state-damaged-/);
  });
});
