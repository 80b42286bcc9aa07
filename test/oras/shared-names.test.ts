/**
 * One repository shared with ghoten for names whose tags mean two things (B2–B4): both sides read
 * and write ghoten's tags for every name, and the `org.terraform.workspace` annotation keeps one
 * workspace's state and another's history apart.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FailedPreconditionError } from "../../src/errors.ts";
import { lockInfo, startCoreFixture, str, text } from "./fixture.ts";
import { ghotenReadsState, ghotenTag, ghotenWritesState } from "./ghoten.ts";

const fx = await startCoreFixture();
const LONG = "l".repeat(115);
const LONGER = "m".repeat(120);

async function annotation(repo: string, tag: string): Promise<string | undefined> {
  const m = await fx.rawManifest(repo, tag);
  assert.equal(m.status, 200, `${tag}: ${m.status}`);
  return (JSON.parse(m.bytes.toString()) as { annotations?: Record<string, string> }).annotations?.[
    "org.terraform.workspace"
  ];
}

describe("names that are also other workspaces' tags, shared with ghoten", () => {
  test("rel-v3, ws-<16 hex> and a 115-character name are one state on both sides, each way", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo);
    for (const ws of ["rel-v3", "ws-0123456789abcdef", LONG]) {
      assert.equal(ghotenTag(ws), ws, "ghoten uses these names as tags unchanged");
      await ghotenWritesState(fx.registry.url, repo, ws, text(`ghoten wrote ${ws}`));
      assert.equal(str((await b.stateMgr(ws).get())?.data ?? new Uint8Array()), `ghoten wrote ${ws}`);
      await b.stateMgr(ws).put(text(`service wrote ${ws}`));
      assert.equal(await ghotenReadsState(fx.registry.url, repo, ws), `service wrote ${ws}`);
      const id = await b.stateMgr(ws).lock(lockInfo(`lock-${ws.length}`));
      assert.ok((await fx.rawTags(repo)).includes(`locked-${ws}`), "ghoten sees the lock");
      await b.stateMgr(ws).unlock(id);
    }
    const tags = await fx.rawTags(repo);
    assert.deepEqual(
      tags.filter((t) => t.startsWith("state-")),
      ["state-rel-v3", `state-${LONG}`, "state-ws-0123456789abcdef"].sort(),
    );
    assert.deepEqual(
      await fx.backend(repo).workspaces(),
      ["default", "rel-v3", "ws-0123456789abcdef", LONG].sort(),
    );
  });

  test("x's version 2 never overwrites ghoten's workspace x-v2: it is written as stver-x-v2", async () => {
    const repo = fx.repo();
    await ghotenWritesState(fx.registry.url, repo, "x-v2", text("x-v2's own state"));
    const b = fx.backend(repo, { maxVersions: 5 });
    for (const n of [1, 2, 3]) await b.stateMgr("x").put(text(`x ${n}`));
    await b.waitForRetention();
    assert.equal(await ghotenReadsState(fx.registry.url, repo, "x-v2"), "x-v2's own state");
    assert.equal(await annotation(repo, "stver-x-v2"), "x");
    const versions = await b.stateMgr("x").listVersions();
    assert.deepEqual(
      versions.map((v) => [v.version, v.tag]),
      [
        [1, "state-x-v1"],
        [2, "stver-x-v2"],
        [3, "state-x-v3"],
      ],
    );
    assert.equal(str((await b.stateMgr("x").getVersion(2)).data), "x 2");
    assert.equal(str((await b.stateMgr("x-v2").get())?.data ?? new Uint8Array()), "x-v2's own state");
    // ghoten's listing hides x-v2 while state-x exists; this one does not.
    assert.deepEqual(await fx.backend(repo).workspaces(), ["default", "x", "x-v2"]);
    await b.stateMgr("x").restoreVersion(2);
    assert.equal(str((await b.stateMgr("x").get())?.data ?? new Uint8Array()), "x 2");
  });

  test("writing workspace x-v2 moves x's version 2 to stver-x-v2 first; before that x-v2 has no state", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 5 });
    for (const n of [1, 2, 3]) await b.stateMgr("x").put(text(`x ${n}`));
    await b.waitForRetention();
    assert.equal(await annotation(repo, "state-x-v2"), "x");
    // state-x-v2 is x's history: workspace x-v2 does not exist yet and reads as empty.
    assert.equal(await b.stateMgr("x-v2").get(), null);
    assert.deepEqual(await b.workspaces(), ["default", "x"]);
    await b.stateMgr("x-v2").put(text("x-v2 1"));
    assert.equal(await annotation(repo, "state-x-v2"), "x-v2");
    assert.equal(await annotation(repo, "stver-x-v2"), "x");
    assert.equal(str((await b.stateMgr("x").getVersion(2)).data), "x 2");
    assert.deepEqual(
      (await b.stateMgr("x").listVersions()).map((v) => v.version),
      [1, 2, 3],
    );
    assert.equal(str((await fx.backend(repo).stateMgr("x-v2").get())?.data ?? new Uint8Array()), "x-v2 1");
    assert.deepEqual(await fx.backend(repo).workspaces(), ["default", "x", "x-v2"]);
    // createWorkspace makes room the same way.
    await b.createWorkspace("x-v3");
    assert.equal(await annotation(repo, "stver-x-v3"), "x");
    assert.equal(await b.stateMgr("x-v3").get(), null);
    assert.equal(str((await b.stateMgr("x").getVersion(3)).data), "x 3");
  });

  test("retention counts only x's own versions and never deletes workspace x-v<N>'s state", async () => {
    const repo = fx.repo();
    await ghotenWritesState(fx.registry.url, repo, "x-v9", text("x-v9 state"));
    const b = fx.backend(repo, { maxVersions: 2 });
    for (const n of [1, 2, 3, 4, 5]) await b.stateMgr("x").put(text(`x ${n}`));
    await b.waitForRetention();
    assert.deepEqual(
      (await b.stateMgr("x").listVersions()).map((v) => v.version),
      [4, 5],
    );
    assert.equal(await ghotenReadsState(fx.registry.url, repo, "x-v9"), "x-v9 state");
    await b.deleteWorkspace("x", true);
    assert.equal(await ghotenReadsState(fx.registry.url, repo, "x-v9"), "x-v9 state");
    assert.deepEqual(await fx.rawTags(repo), ["state-x-v9"]);
  });

  test("a 120-character name keeps ghoten's state and lock tags; its versions, too long for them, go under its hash", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 2 });
    for (const n of [1, 2, 3]) await b.stateMgr(LONGER).put(text(`long ${n}`));
    await b.waitForRetention();
    assert.equal(await ghotenReadsState(fx.registry.url, repo, LONGER), "long 3");
    const tags = await fx.rawTags(repo);
    for (const t of tags) assert.ok(t.length <= 128, t);
    const versions = await b.stateMgr(LONGER).listVersions();
    assert.deepEqual(
      versions.map((v) => v.version),
      [2, 3],
    );
    for (const v of versions) assert.match(v.tag, /^stver-ws-[0-9a-f]{16}-v\d$/);
    assert.equal(str((await b.stateMgr(LONGER).getVersion(2)).data), "long 2");
    assert.deepEqual(await b.workspaces(), ["default", LONGER]);
    await b.deleteWorkspace(LONGER, true);
    assert.deepEqual(await fx.rawTags(repo), []);
  });

  test("a name too long for ghoten's lock tag (122+ characters) uses the hashed tag", async () => {
    const repo = fx.repo();
    const name = "n".repeat(122);
    const b = fx.backend(repo);
    await b.stateMgr(name).put(text("hashed"));
    const id = await b.stateMgr(name).lock(lockInfo("long"));
    const tags = await fx.rawTags(repo);
    assert.ok(
      tags.every((t) => /^(state|locked)-ws-[0-9a-f]{16}$/.test(t)),
      tags.join(),
    );
    await b.stateMgr(name).unlock(id);
    assert.deepEqual(await fx.backend(repo).workspaces(), ["default", name]);
  });

  test("another workspace's state under a shared tag is refused, never read or overwritten", async () => {
    const repo = fx.repo();
    // ghoten's workspace "a/b" hashes to ws-c14cddc033f64b9d, which is also a valid literal name.
    await ghotenWritesState(fx.registry.url, repo, "a/b", text("a/b's state"));
    const b = fx.backend(repo);
    for (const attempt of [
      () => b.stateMgr("ws-c14cddc033f64b9d").get(),
      () => b.stateMgr("ws-c14cddc033f64b9d").put(text("no")),
      () => b.createWorkspace("ws-c14cddc033f64b9d"),
    ]) {
      await assert.rejects(
        attempt(),
        (e: unknown) => e instanceof FailedPreconditionError && /"a\/b"/.test(e.message),
      );
    }
    assert.equal(await ghotenReadsState(fx.registry.url, repo, "a/b"), "a/b's state");
  });
});
