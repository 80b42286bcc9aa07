/**
 * The http backend and the coordinator's other callers share one coordinator and one set of locks:
 * what happens over http is what the RPCs see, and the other way round.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, describe, test } from "node:test";
import type { LockEvent } from "../../src/coordinator/types.ts";
import { LockError, workspaceTag } from "../../src/oras/index.ts";
import { startTfhttpFixture } from "./fixture.ts";
import { closeClients, newLockInfo, rawRequest, stateDoc, TofuHttpClient } from "./tofu-client.ts";

const fx = await startTfhttpFixture();
after(closeClients);

const bytes = (s: string) => new TextEncoder().encode(s);

/** The next event that is not part of the initial snapshot. */
async function nextChange(events: AsyncIterator<LockEvent>): Promise<LockEvent> {
  for (;;) {
    const { value, done } = await events.next();
    assert.ok(!done, "the watch stream ended early");
    if (value.kind !== "snapshot" && value.kind !== "snapshot_complete") return value;
  }
}

describe("one coordinator, one set of locks", () => {
  test("a lock taken over http shows in watchLock and fences putState; its release shows too", async () => {
    const ws = fx.workspaceName("http-lock");
    const watch = new AbortController();
    const events = fx.coordinator.watchLock(ws, watch.signal)[Symbol.asyncIterator]();
    try {
      const first = await events.next();
      assert.equal(first.value?.kind, "snapshot");

      const cli = new TofuHttpClient({ address: `${fx.url}/terraform/state/${ws}` });
      const info = newLockInfo("OperationTypeApply", "carol@http");
      assert.equal((await cli.lock(info)).status, 200);

      const locked = await nextChange(events);
      assert.equal(locked.kind, "locked");
      assert.equal(locked.kind === "locked" && locked.info?.id, info.ID);
      assert.equal(locked.kind === "locked" && locked.info?.who, "carol@http");

      await assert.rejects(fx.coordinator.putState(ws, bytes(stateDoc(1, "rpc"))), (err: unknown) => {
        assert.ok(err instanceof LockError, String(err));
        assert.equal(err.holder.id, info.ID);
        return true;
      });
      await fx.coordinator.putState(ws, bytes(stateDoc(1, "rpc")), { lockId: info.ID });
      assert.equal((await cli.get()).text, stateDoc(1, "rpc"), "the fenced RPC write is what http reads");

      assert.equal((await cli.unlock(info.ID)).status, 200);
      const unlocked = await nextChange(events);
      assert.equal(unlocked.kind, "unlocked");
      await fx.coordinator.putState(ws, bytes(stateDoc(2, "rpc")));
    } finally {
      watch.abort();
    }
  });

  test("a coordinator lock is 423 over http with its LockInfo, and its ID fences http writes", async () => {
    const ws = fx.workspaceName("rpc-lock");
    const address = `${fx.url}/terraform/state/${ws}`;
    const held = await fx.coordinator.lock(ws, {
      id: "rpc-lock-1",
      operation: "OperationTypeApply",
      info: "held over Connect",
      who: "dave@rpc",
      version: "",
      created: "2026-11-25T10:00:00.5Z",
      path: "",
    });

    const blocked = await new TofuHttpClient({ address }).lock(newLockInfo());
    assert.equal(blocked.status, 423);
    assert.deepEqual(JSON.parse(blocked.text), {
      ID: "rpc-lock-1",
      Operation: "OperationTypeApply",
      Info: "held over Connect",
      Who: "dave@rpc",
      Version: "",
      Created: "2026-11-25T10:00:00.5Z",
      Path: `state-${workspaceTag(ws)}`,
    });
    assert.equal((await rawRequest(address, "POST", stateDoc(1, "l"))).status, 409);
    assert.equal((await rawRequest(`${address}?ID=${held.id}`, "POST", stateDoc(1, "l"))).status, 200);

    await fx.coordinator.unlock(ws, held.id);
    assert.equal((await new TofuHttpClient({ address }).lock(newLockInfo())).status, 200);
  });

  test("state written over http is what getState reads, stored in the seed's format", async () => {
    const ws = `team/${fx.workspaceName("format")}`;
    const doc = stateDoc(3, "fmt");
    const res = await rawRequest(`${fx.url}/terraform/state/${encodeURIComponent(ws)}`, "POST", doc);
    assert.equal(res.status, 200, res.text);

    const stored = await fx.coordinator.getState(ws);
    assert.ok(stored);
    assert.equal(Buffer.from(stored.data).toString(), doc);
    assert.deepEqual(Buffer.from(stored.md5), createHash("md5").update(doc).digest());

    const tag = workspaceTag(ws);
    assert.match(tag, /^ws-[0-9a-f]{16}$/, "a name with a slash is stored under its hashed tag");
    const raw = await fx.core.rawManifest(fx.repository, `state-${tag}`);
    assert.equal(raw.status, 200);
    const manifest = JSON.parse(raw.bytes.toString()) as {
      mediaType: string;
      artifactType: string;
      config: { mediaType: string; digest: string };
      layers: Array<{ mediaType: string; digest: string; size: number }>;
      annotations: Record<string, string>;
    };
    assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(manifest.artifactType, "application/vnd.terraform.state.v1");
    assert.equal(manifest.config.mediaType, "application/vnd.oci.empty.v1+json");
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0]?.mediaType, "application/vnd.terraform.statefile.v1");
    assert.equal(manifest.layers[0]?.digest, `sha256:${createHash("sha256").update(doc).digest("hex")}`);
    assert.equal(manifest.layers[0]?.size, Buffer.byteLength(doc));
    assert.equal(manifest.annotations["org.terraform.workspace"], ws);
    assert.match(manifest.annotations["org.terraform.state.updated_at"] ?? "", /^\d{4}-\d{2}-\d{2}T/);
  });
});
