/**
 * GetLock says in every answer whether the workspace is locked: a free workspace's Connect JSON
 * answer is `{"state":"LOCK_STATE_UNLOCKED"}`, not `{}`, read here as raw HTTP bodies, the way the
 * README's curl reads them; the binary protocols carry the same enum.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LockState, StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { client, PROTOCOLS, startRegistryFixture } from "./fixture.ts";

const fx = await startRegistryFixture();
const served = await fx.serve();

/** A Connect unary call with a JSON body, as curl sends it; returns the status and the raw body. */
async function connectJson(method: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${served.url}/tfstate.v1.StateService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return { status: res.status, text: await res.text() };
}

test("a free workspace's GetLock answer in JSON says it is unlocked", async () => {
  const answer = await connectJson("GetLock", { workspace: "default" });
  assert.deepEqual(answer, { status: 200, text: '{"state":"LOCK_STATE_UNLOCKED"}' });

  // The Connect GET form the README shows for GetState works for GetLock too.
  const message = encodeURIComponent(JSON.stringify({ workspace: "default" }));
  const res = await fetch(
    `${served.url}/tfstate.v1.StateService/GetLock?connect=v1&encoding=json&message=${message}`,
  );
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{"state":"LOCK_STATE_UNLOCKED"}');
});

test("a held lock reads LOCK_STATE_LOCKED with its holder, and unlocked again once released", async () => {
  const workspace = "get-lock-json";
  const locked = await connectJson("Lock", { workspace, lock: { id: "lock-1", who: "alice@ci" } });
  assert.equal(locked.status, 200, locked.text);

  const held = await connectJson("GetLock", { workspace });
  assert.equal(held.status, 200);
  const body = JSON.parse(held.text) as { state?: string; lock?: { id?: string; who?: string } };
  assert.equal(body.state, "LOCK_STATE_LOCKED");
  assert.equal(body.lock?.id, "lock-1");
  assert.equal(body.lock?.who, "alice@ci");

  assert.equal((await connectJson("Unlock", { workspace, lockId: "lock-1" })).status, 200);
  assert.equal((await connectJson("GetLock", { workspace })).text, '{"state":"LOCK_STATE_UNLOCKED"}');
});

for (const protocol of PROTOCOLS) {
  test(`GetLock carries the lock state over ${protocol}`, async () => {
    const state = client(StateService, protocol, served.url);
    const workspace = `get-lock-${protocol.replace(/[^a-z0-9]+/g, "-")}`;
    const free = await state.getLock({ workspace });
    assert.equal(free.state, LockState.UNLOCKED);
    assert.equal(free.lock, undefined);

    const { lock } = await state.lock({ workspace, lock: { who: "bob@ci" } });
    const held = await state.getLock({ workspace });
    assert.equal(held.state, LockState.LOCKED);
    assert.equal(held.lock?.id, lock?.id);
    await state.unlock({ workspace, lockId: lock?.id ?? "" });
  });
}
