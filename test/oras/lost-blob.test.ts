/**
 * The core's reads when a state's layer blob is missing: lost data naming the tag and the blob,
 * unless the tag moved on while the read was between its manifest and its blob (a store that
 * removes replaced blobs), in which case the read starts over on the new state.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fetch } from "undici";
import { DataLossError } from "../../src/errors.ts";
import { startCoreFixture, str, text } from "./fixture.ts";

const fx = await startCoreFixture();

async function layerDigest(repo: string, tag: string): Promise<string> {
  const m = await fx.rawManifest(repo, tag);
  return (JSON.parse(m.bytes.toString()) as { layers: { digest: string }[] }).layers[0]?.digest as string;
}

async function deleteBlob(repo: string, digest: string): Promise<void> {
  const res = await fetch(`${fx.registry.url}/v2/${repo}/blobs/${digest}`, { method: "DELETE" });
  await res.arrayBuffer();
  assert.equal(res.status, 202);
}

test("a missing layer blob is DataLossError naming the tag, the manifest and the blob, for get, openRead and versions", async () => {
  const repo = fx.repo();
  await fx.backend(repo, { maxVersions: 3 }).stateMgr("prod").put(text('{"serial":1}'));
  const digest = await layerDigest(repo, "state-prod");
  await deleteBlob(repo, digest);
  const mgr = fx.backend(repo, { maxVersions: 3 }).stateMgr("prod");
  for (const read of [() => mgr.get(), () => mgr.openRead(), () => mgr.getVersion(1)]) {
    await assert.rejects(read(), (e: unknown) => {
      assert.ok(e instanceof DataLossError, String(e));
      assert.match(e.message, /state at tag state-prod(-v1)? \(manifest sha256:[0-9a-f]{64}\)/);
      assert.ok(e.message.includes(`layer blob ${digest}`), e.message);
      return true;
    });
  }
});

test("a read whose old blob vanished because the state was replaced meanwhile returns the new state", async () => {
  const repo = fx.repo();
  const writer = fx.backend(repo);
  await writer.stateMgr("busy").put(text("old"));
  const old = await layerDigest(repo, "state-busy");
  // Between the reader's manifest GET and its blob GET: the state is replaced and the old blob goes.
  fx.proxy.fault({
    method: "GET",
    path: /\/manifests\/state-busy$/,
    times: 1,
    action: {
      kind: "afterUpstream",
      run: async () => {
        await writer.stateMgr("busy").put(text("new"));
        await deleteBlob(repo, old);
      },
    },
  });
  try {
    const got = await fx.backend(repo).stateMgr("busy").get();
    assert.equal(str(got?.data ?? new Uint8Array()), "new");
  } finally {
    fx.proxy.clearFaults();
  }
});
