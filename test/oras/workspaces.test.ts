import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  UnimplementedError,
} from "../../src/errors.ts";
import { LockError } from "../../src/oras/index.ts";
import { startFakeGitHubApi } from "../harness/github-api.ts";
import { pushManifest } from "../harness/seed.ts";
import { lockInfo, startCoreFixture, text } from "./fixture.ts";

const fx = await startCoreFixture();
const DENY_DELETE = {
  kind: "status" as const,
  status: 405,
  body: '{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}',
};

describe("workspaces (§1)", () => {
  test("dev and 'my workspace', each written twice with versioning, are listed; default once (case 12)", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 5 });
    for (const ws of ["dev", "my workspace"]) {
      await b.stateMgr(ws).put(text("1"));
      await b.stateMgr(ws).put(text("2"));
    }
    await b.stateMgr("default").put(text("d"));
    assert.deepEqual(await b.workspaces(), ["default", "dev", "my workspace"]);
    const tags = await fx.rawTags(repo);
    assert.ok(tags.includes("state-ws-052c7440eea985d3"), "hashed as ghoten hashes it");
    assert.deepEqual(
      await fx.backend(fx.repo()).workspaces(),
      ["default"],
      "an unknown repository lists default",
    );
  });

  test("W7: a created workspace is listed at once, reads as no state, and cannot be created twice", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo);
    await b.createWorkspace("feature/x");
    assert.deepEqual(await fx.backend(repo).workspaces(), ["default", "feature/x"]);
    assert.equal(await b.stateMgr("feature/x").get(), null);
    await assert.rejects(b.createWorkspace("feature/x"), AlreadyExistsError);
    await assert.rejects(b.createWorkspace("default"), AlreadyExistsError);
    const info = await b.describeWorkspace("feature/x");
    assert.equal(info.exists, true);
    assert.equal(info.hasState, false);
    assert.equal((await b.describeWorkspace("nope")).exists, false);
  });

  test("orphaned history is not a phantom workspace; ghoten's workspace literally named x-v2 is listed", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 5 });
    await b.stateMgr("app").put(text("1"));
    // An orphan version tag of "app2" (its base state tag is missing).
    const orphan = await fx.rawManifest(repo, "state-app-v1");
    const m = JSON.parse(orphan.bytes.toString());
    m.annotations["org.terraform.workspace"] = "app2";
    await pushManifest(fx.registry.url, repo, "state-app2-v3", Buffer.from(JSON.stringify(m)));
    // ghoten stores workspace "legacy-v2" under state-legacy-v2 (its B2 bug); it must stay visible.
    m.annotations["org.terraform.workspace"] = "legacy-v2";
    await pushManifest(fx.registry.url, repo, "state-legacy-v2", Buffer.from(JSON.stringify(m)));
    assert.deepEqual(await b.workspaces(), ["app", "default", "legacy-v2"]);
  });

  test("B1: deleting foo leaves foo-vpc and foo-v2 (and their histories) alone", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 3 });
    for (const ws of ["foo", "foo-vpc", "foo-v2"]) {
      await b.stateMgr(ws).put(text(`${ws} 1`));
      await b.stateMgr(ws).put(text(`${ws} 2`));
    }
    await b.waitForRetention();
    await b.stateMgr("foo").lock(lockInfo("foo-lock"));
    await b.deleteWorkspace("foo", true);
    assert.deepEqual(await b.workspaces(), ["default", "foo-v2", "foo-vpc"]);
    const tags = await fx.rawTags(repo);
    // state-foo-v2 is workspace foo-v2's state (ghoten's tag for it), not foo's version 2.
    assert.ok(
      !tags.some(
        (t) =>
          t === "state-foo" ||
          (/^(state|stver)-foo-v\d+$/.test(t) && t !== "state-foo-v2") ||
          t === "locked-foo",
      ),
      tags.join(),
    );
    assert.ok(tags.includes("state-foo-vpc-v1") && tags.includes("state-foo-vpc-v2"));
    assert.ok(tags.includes("state-foo-v2-v1") && tags.includes("state-foo-v2-v2"));
    assert.equal(new TextDecoder().decode((await b.stateMgr("foo-v2").get())?.data), "foo-v2 2");
    assert.deepEqual(
      (await b.stateMgr("foo-v2").listVersions()).map((v) => v.version),
      [1, 2],
    );
  });

  test("B1/B2: deleting foo with history leaves ghoten's workspace literally named foo-v2 (tag state-foo-v2) alone", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 5 });
    await b.stateMgr("foo").put(text("foo 1"));
    // ghoten writes workspace "foo-v2" under state-foo-v2, the tag version 2 of foo would use.
    const m = JSON.parse((await fx.rawManifest(repo, "state-foo-v1")).bytes.toString());
    m.annotations["org.terraform.workspace"] = "foo-v2";
    delete m.annotations["org.terraform.state.version"];
    await pushManifest(fx.registry.url, repo, "state-foo-v2", Buffer.from(JSON.stringify(m)));
    await b.deleteWorkspace("foo", true);
    assert.deepEqual(await fx.rawTags(repo), ["state-foo-v2"]);
  });

  test("delete refuses a locked workspace, one with resources, and default; force deletes (case 13)", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo);
    await b.stateMgr("busy").put(text('{"resources":[{"type":"x"}]}'));
    await assert.rejects(
      b.deleteWorkspace("busy"),
      (e: unknown) => e instanceof FailedPreconditionError && /resources/.test(e.message),
    );
    await b.stateMgr("held").put(text('{"resources":[]}'));
    await b.stateMgr("held").lock(lockInfo("h1"));
    await assert.rejects(
      b.deleteWorkspace("held"),
      (e: unknown) => e instanceof LockError && e.holder.id === "h1",
    );
    await assert.rejects(b.deleteWorkspace("default", true), /"default" workspace cannot be deleted/);
    await assert.rejects(b.deleteWorkspace("never-existed", true), NotFoundError);
    await b.deleteWorkspace("busy", true);
    await b.deleteWorkspace("held", true);
    assert.deepEqual(await b.workspaces(), ["default"]);
    assert.deepEqual(await fx.rawTags(repo), []);
  });

  test("a 500 on delete is an error naming the workspace (case 13)", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { retry: { maxAttempts: 1 } });
    await b.stateMgr("w").put(text("{}"));
    fx.proxy.fault({
      method: "DELETE",
      path: new RegExp(`/v2/${repo}/`),
      action: { kind: "status", status: 500 },
    });
    try {
      await assert.rejects(b.deleteWorkspace("w", true), /deleting workspace "w" \(tag state-w\)/);
    } finally {
      fx.proxy.clearFaults();
    }
  });

  test("B5: a registry that answers 405 without the GitHub fallback makes delete fail, never report success", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo);
    await b.stateMgr("w").put(text("{}"));
    fx.proxy.fault({ method: "DELETE", path: new RegExp(`/v2/${repo}/`), action: DENY_DELETE });
    try {
      await assert.rejects(b.deleteWorkspace("w", true), UnimplementedError);
    } finally {
      fx.proxy.clearFaults();
    }
    assert.ok((await fx.rawTags(repo)).includes("state-w"));
  });

  for (const ownerKind of ["org", "user"] as const) {
    test(`GHCR: with DELETE answered 405, workspace delete goes through the GitHub Packages API (${ownerKind})`, async () => {
      const pkg = `infra-${randomBytes(3).toString("hex")}/state`;
      const repo = `acme/${pkg}`;
      const token = "ghp_test_token";
      const api = await startFakeGitHubApi({
        registryUrl: fx.registry.url,
        repository: repo,
        owner: "acme",
        packageName: pkg,
        ownerKind,
        token,
      });
      try {
        const b = fx.backend(repo, {
          githubApiUrl: api.url,
          maxVersions: 3,
          credentialFunc: async () => ({ username: "acme-bot", password: token }),
        });
        await b.stateMgr("w").put(text("1"));
        await b.stateMgr("w").put(text("2"));
        await b.stateMgr("keep").put(text("k"));
        await b.waitForRetention();
        fx.proxy.fault({ method: "DELETE", path: new RegExp(`/v2/${repo}/`), action: DENY_DELETE });
        await b.deleteWorkspace("w", true);
        assert.deepEqual(await fx.rawTags(repo), ["state-keep", "state-keep-v1"]);
        assert.ok(api.requests.some((r) => r.method === "DELETE" && r.status === 204));
      } finally {
        fx.proxy.clearFaults();
        await api.stop();
      }
    });
  }
});

describe("workspace names that are not tags", () => {
  test("hashed workspaces round-trip their names through the annotation; a B3 alias never overwrites or reads another's state", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo);
    const alias = "ws-c14cddc033f64b9d"; // the hash of "a/b", and ghoten's tag for both names
    await b.stateMgr("a/b").put(text("slash"));
    await assert.rejects(
      b.stateMgr(alias).put(text("literal")),
      (e: unknown) =>
        e instanceof FailedPreconditionError &&
        e.message.includes(`tag state-${alias} holds the state of workspace "a/b"`),
    );
    await assert.rejects(b.stateMgr(alias).get(), FailedPreconditionError);
    assert.deepEqual(await fx.backend(repo).workspaces(), ["a/b", "default"]);
    assert.equal(new TextDecoder().decode((await b.stateMgr("a/b").get())?.data), "slash");
    // The other way round: the literal name first, then the hashed one is refused.
    const repo2 = fx.repo();
    const c = fx.backend(repo2);
    await c.stateMgr(alias).put(text("literal"));
    await assert.rejects(c.stateMgr("a/b").put(text("slash")), FailedPreconditionError);
    assert.deepEqual(await fx.backend(repo2).workspaces(), ["default", alias]);
    assert.equal(new TextDecoder().decode((await c.stateMgr(alias).get())?.data), "literal");
  });

  test("bad names are refused before any registry request", async () => {
    const b = fx.backend(fx.repo());
    fx.proxy.clear();
    for (const bad of ["", "x".repeat(300), "a\u0000b", "bad\ud800"]) {
      assert.throws(() => b.stateMgr(bad), /workspace name/);
      await assert.rejects(b.createWorkspace(bad), /workspace name/);
    }
    assert.equal(fx.proxy.requests.length, 0);
  });
});
