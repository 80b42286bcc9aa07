import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { createBackend, LockError } from "../../src/oras/index.ts";
import { pushManifest, sha256Digest } from "../harness/seed.ts";
import { lockInfo, startCoreFixture, str, text } from "./fixture.ts";
import { EMPTY_DESCRIPTOR as EMPTY, ghotenWritesState } from "./ghoten.ts";

const run = promisify(execFile);
const fx = await startCoreFixture();
const scratch = await mkdtemp(join(tmpdir(), "oci-tfstate-interop-"));
after(() => rm(scratch, { recursive: true, force: true }));

describe("interoperability with ghoten's format", () => {
  test("states ghoten wrote (plain, gzip, hashed name, versioned) are read, listed and continued", async () => {
    const repo = fx.repo();
    const s = text('{"version":4,"serial":7,"lineage":"l","resources":[]}');
    await ghotenWritesState(fx.registry.url, repo, "default", s);
    await ghotenWritesState(fx.registry.url, repo, "prod", s, { gzip: true, version: 4 });
    await ghotenWritesState(fx.registry.url, repo, "my workspace", s);
    const b = fx.backend(repo, { maxVersions: 10 });
    assert.deepEqual(await b.workspaces(), ["default", "my workspace", "prod"]);
    for (const ws of ["default", "prod", "my workspace"]) {
      assert.equal(str((await b.stateMgr(ws).get())?.data ?? new Uint8Array()), str(s), ws);
    }
    assert.equal(
      (await b.stateMgr("prod").put(text("next"))).version,
      5,
      "numbering continues from ghoten's",
    );
  });

  test("a lock ghoten holds is respected and shows its holder", async () => {
    const repo = fx.repo();
    await ghotenWritesState(fx.registry.url, repo, "default", text("{}"));
    const info = JSON.stringify({
      ID: "9d1e",
      Operation: "OperationTypePlan",
      Info: "",
      Who: "ghoten@laptop",
      Version: "1.9.0",
      Created: "2026-01-02T07:33:40.123456789Z",
      Path: "",
    });
    const lock = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: "application/vnd.terraform.lock.v1",
        config: EMPTY,
        layers: [EMPTY],
        annotations: {
          "org.opencontainers.image.created": "2026-01-02T07:33:40Z",
          "org.terraform.lock.generation": '{"generation":1,"holder_id":"9d1e"}',
          "org.terraform.lock.id": "9d1e",
          "org.terraform.lock.info": info,
          "org.terraform.workspace": "default",
        },
      }),
    );
    await pushManifest(fx.registry.url, repo, "locked-default", lock);
    await assert.rejects(fx.backend(repo).stateMgr("default").lock(lockInfo("ours")), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.equal(e.holder.id, "9d1e");
      assert.equal(e.holder.who, "ghoten@laptop");
      assert.equal(e.holder.path, "state-default", "empty Path falls back to the state tag");
      assert.equal(e.generation, 1);
      return true;
    });
  });

  test("what the core writes has exactly the tags, media types and annotations ghoten expects", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { maxVersions: 3, compression: "gzip" });
    await b.stateMgr("prod").put(text('{"serial":1}'));
    await b.stateMgr("prod").lock(lockInfo("abc"));
    assert.deepEqual(await fx.rawTags(repo), ["locked-prod", "state-prod", "state-prod-v1"]);
    const m = JSON.parse((await fx.rawManifest(repo, "state-prod")).bytes.toString());
    assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(m.artifactType, "application/vnd.terraform.state.v1");
    assert.deepEqual(m.config, EMPTY);
    assert.equal(m.layers.length, 1);
    assert.deepEqual(Object.keys(m.layers[0]), ["mediaType", "digest", "size"]);
    assert.equal(m.layers[0].mediaType, "application/vnd.terraform.statefile.v1+gzip");
    assert.deepEqual(Object.keys(m.annotations).sort(), [
      "org.opencontainers.image.created",
      "org.terraform.state.updated_at",
      "org.terraform.state.version",
      "org.terraform.workspace",
    ]);
    assert.match(
      m.annotations["org.terraform.state.updated_at"],
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/,
    );
    assert.match(m.annotations["org.opencontainers.image.created"], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(m.annotations["org.terraform.state.version"], "1");
    assert.equal(m.annotations["org.terraform.workspace"], "prod");
    const l = JSON.parse((await fx.rawManifest(repo, "locked-prod")).bytes.toString());
    assert.equal(l.artifactType, "application/vnd.terraform.lock.v1");
    assert.deepEqual(l.layers, [EMPTY]);
    assert.deepEqual(Object.keys(l.annotations).sort(), [
      "org.opencontainers.image.created",
      "org.terraform.lock.generation",
      "org.terraform.lock.id",
      "org.terraform.lock.info",
      "org.terraform.workspace",
    ]);
  });
});

describe("skopeo, a third-party OCI client", () => {
  test("a state written by the core copies out to a layout and back, byte-identical, and reads again", async () => {
    const repo = fx.repo();
    const b = fx.backend(repo, { compression: "gzip" });
    const state = text(JSON.stringify({ serial: 3, resources: [{ n: "x".repeat(1000) }] }));
    await b.stateMgr("default").put(state);
    const original = await fx.rawManifest(repo, "state-default");
    const layout = join(scratch, "copy");
    const tls = ["--src-tls-verify=false"];
    await run("skopeo", [
      "copy",
      ...tls,
      `docker://${fx.registry.host}/${repo}:state-default`,
      `oci:${layout}:state-default`,
    ]);
    const back = fx.repo();
    await run("skopeo", [
      "copy",
      "--dest-tls-verify=false",
      `oci:${layout}:state-default`,
      `docker://${fx.registry.host}/${back}:state-default`,
    ]);
    const copied = await fx.rawManifest(back, "state-default");
    assert.equal(copied.digest, original.digest);
    assert.deepEqual(copied.bytes, original.bytes);
    assert.equal(
      str((await fx.backend(back).stateMgr("default").get())?.data ?? new Uint8Array()),
      str(state),
    );
  });

  test("the embedded layout store is readable by skopeo", async () => {
    const dir = join(scratch, "layout-store");
    const b = createBackend({ repository: `oci-layout:${dir}` });
    try {
      await b.stateMgr("default").put(text('{"serial":1}'));
      const out = join(scratch, "from-layout");
      await run("skopeo", ["copy", `oci:${dir}:state-default`, `dir:${out}`]);
      const manifest = await readFile(join(out, "manifest.json"));
      const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8"));
      const entry = index.manifests.find(
        (m: { annotations?: Record<string, string> }) =>
          m.annotations?.["org.opencontainers.image.ref.name"] === "state-default",
      );
      assert.equal(sha256Digest(manifest), entry.digest);
      const layer = JSON.parse(manifest.toString()).layers[0];
      assert.equal(str(await readFile(join(out, layer.digest.slice(7)))), '{"serial":1}');
    } finally {
      await b.close();
    }
  });
});
