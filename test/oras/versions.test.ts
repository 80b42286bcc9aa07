import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NotFoundError, UnavailableError } from "../../src/errors.ts";
import { startCoreFixture, str, text } from "./fixture.ts";

const fx = await startCoreFixture();
const versionTags = async (repo: string, ws = "default") =>
  (await fx.rawTags(repo)).filter((t) => t.startsWith(`state-${ws}-v`)).sort();

describe("versions and retention (§5)", () => {
  test("max 2, three writes: the state is s3, v1 is gone, v2 and v3 stay (case 11)", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 2 });
    const mgr = b.stateMgr("default");
    for (const s of ["s1", "s2", "s3"]) await mgr.put(text(s));
    await mgr.waitForRetention();
    assert.equal(str((await mgr.get())?.data ?? new Uint8Array()), "s3");
    assert.deepEqual(await versionTags(repo), ["state-default-v2", "state-default-v3"]);
    const latest = JSON.parse((await fx.rawManifest(repo, "state-default-v3")).bytes.toString());
    assert.equal(latest.annotations["org.terraform.state.version"], "3");
    const state = await fx.rawManifest(repo, "state-default");
    assert.equal(
      state.digest,
      (await fx.rawManifest(repo, "state-default-v3")).digest,
      "same digest as the state tag",
    );
  });

  test("max 2, five writes, then waitForRetention: at most 2 version tags (case 11)", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 2 });
    for (let i = 1; i <= 5; i++) await b.stateMgr("default").put(text(`s${i}`));
    await b.waitForRetention();
    assert.deepEqual(await versionTags(repo), ["state-default-v4", "state-default-v5"]);
  });

  test("waitForRetention returns at once with versioning off, and writes do not wait for retention", async () => {
    const repo = fx.repo();
    const off = fx.backend(repo);
    await off.stateMgr("default").put(text("x"));
    await off.waitForRetention();
    assert.deepEqual(await versionTags(repo), []);
    const on = fx.backend(fx.repo(), { maxVersions: 1 });
    // Slow deletes hold retention back; the writes must still complete without them.
    fx.proxy.fault({ method: "DELETE", action: { kind: "delay", ms: 400 } });
    try {
      const started = Date.now();
      for (let i = 0; i < 3; i++) await on.stateMgr("default").put(text(`v${i}`));
      assert.ok(Date.now() - started < 1000, "puts are not blocked by retention");
      await on.waitForRetention();
    } finally {
      fx.proxy.clearFaults();
    }
  });

  test("list, read and restore versions; a restore is a new write with a new version", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo, { maxVersions: 5 }).stateMgr("team/prod");
    for (const s of ["one", "two", "three"]) await mgr.put(text(s));
    const versions = await mgr.listVersions();
    assert.deepEqual(
      versions.map((v) => v.version),
      [1, 2, 3],
    );
    assert.ok(versions.every((v) => v.digest.startsWith("sha256:") && v.storedSize > 0 && v.updatedAt));
    assert.equal(str((await mgr.getVersion(1)).data), "one");
    await assert.rejects(mgr.getVersion(9), NotFoundError);
    const restored = await mgr.restoreVersion(1);
    assert.equal(restored.version, 4);
    assert.equal(str((await mgr.get())?.data ?? new Uint8Array()), "one");
  });

  test("version tags written as stver- (a later ghoten variant) are read too", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo, { maxVersions: 5 }).stateMgr("default");
    await mgr.put(text("first"));
    const m = await fx.rawManifest(repo, "state-default-v1");
    const res = await fetch(`${fx.registry.url}/v2/${repo}/manifests/stver-default-v7`, {
      method: "PUT",
      body: m.bytes,
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(res.status, 201);
    assert.deepEqual(
      (await mgr.listVersions()).map((v) => [v.version, v.tag]),
      [
        [1, "state-default-v1"],
        [7, "stver-default-v7"],
      ],
    );
    assert.equal(str((await mgr.getVersion(7)).data), "first");
  });

  test("W6: a transient failure reading the current version fails the write instead of renumbering from 1", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 10 });
    const mgr = b.stateMgr("default");
    await mgr.put(text("a"));
    await mgr.put(text("b"));
    const v1 = (await fx.rawManifest(repo, "state-default-v1")).digest;
    const flaky = fx.backend(repo, {
      maxVersions: 10,
      retry: { maxAttempts: 2, initialBackoff: 5, maxBackoff: 5 },
    });
    fx.proxy.fault({
      method: "GET",
      path: new RegExp(`/v2/${repo}/manifests/state-default$`),
      action: { kind: "status", status: 503 },
    });
    try {
      await assert.rejects(flaky.stateMgr("default").put(text("c")), UnavailableError);
    } finally {
      fx.proxy.clearFaults();
    }
    assert.equal((await fx.rawManifest(repo, "state-default-v1")).digest, v1, "v1 untouched");
    assert.equal(str((await mgr.get())?.data ?? new Uint8Array()), "b");
  });

  test("W6: a write retried after a transient error keeps its version number", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo, { maxVersions: 10 }).stateMgr("default");
    await mgr.put(text("a"));
    fx.proxy.fault({
      method: "PUT",
      path: /manifests\/state-default$/,
      times: 1,
      action: { kind: "status", status: 503 },
    });
    const second = await mgr.put(text("b"));
    fx.proxy.clearFaults();
    assert.equal(second.version, 2);
    assert.deepEqual(await versionTags(repo), ["state-default-v1", "state-default-v2"]);
  });

  test("numbering continues after the history when the state carries no version (legacy or deleted)", async () => {
    const repo = fx.repo();
    const mgr = fx.backend(repo, { maxVersions: 10 }).stateMgr("default");
    await mgr.put(text("a"));
    await mgr.put(text("b"));
    await mgr.delete();
    assert.equal(await mgr.get(), null);
    assert.deepEqual(
      await versionTags(repo),
      ["state-default-v1", "state-default-v2"],
      "delete keeps history",
    );
    assert.equal(str((await mgr.getVersion(2)).data), "b");
    assert.equal((await mgr.put(text("c"))).version, 3);
  });
});
