/**
 * Interoperability with a real OCI tool: Debian's skopeo reads layouts this target writes, and this
 * target reads layouts skopeo writes, with every digest unchanged.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { createLayoutTarget } from "../../src/oci/layout.ts";
import {
  ANNOTATION_REF_NAME,
  EMPTY_BLOB,
  EMPTY_DIGEST,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
} from "../../src/oci/media-types.ts";
import { collect, digestOf, STATE_TYPE, STATEFILE_TYPE, tempRoot } from "./layout-fixtures.ts";

const execFileAsync = promisify(execFile);

async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync("skopeo", ["--policy", "/etc/containers/policy.json", ...args], {
    timeout: 60_000,
  });
  return stdout;
}

let root: string;
let cleanup: () => Promise<void>;

before(async () => {
  ({ root, cleanup } = await tempRoot());
});

after(async () => {
  await cleanup();
});

const STATE = new TextEncoder().encode(
  '{"version":4,"terraform_version":"1.9.0","serial":7,"lineage":"abc"}',
);

/** An artifact as ghoten writes one: artifactType, empty config, one custom-type layer, annotations. */
function stateManifest(layerDigest: string, workspace: string): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      artifactType: STATE_TYPE,
      config: { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_DIGEST, size: 2, data: "e30=" },
      layers: [
        {
          mediaType: STATEFILE_TYPE,
          digest: layerDigest,
          size: STATE.byteLength,
          annotations: { "org.opencontainers.image.title": "terraform.tfstate" },
        },
      ],
      annotations: {
        "org.opencontainers.image.created": "2026-01-02T07:33:40Z",
        "org.terraform.workspace": workspace,
        "org.terraform.state.updated_at": "2026-01-02T07:33:40.1234567Z",
      },
    }),
  );
}

describe("layout target: skopeo interoperability", () => {
  const ours = () => path.join(root, "ours");
  let manifestBytes: Uint8Array;
  let manifestDigest: string;

  before(async () => {
    const target = createLayoutTarget({ dir: ours() });
    try {
      await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
      const layer = await target.pushBlob({ bytes: STATE }, STATEFILE_TYPE);
      manifestBytes = stateManifest(layer.digest, "default");
      manifestDigest = (await target.pushManifest("state-default", manifestBytes, MEDIA_TYPE_OCI_MANIFEST))
        .digest;
      // A second tag, so skopeo has to pick the right index.json entry.
      await target.pushManifest("state-other", stateManifest(layer.digest, "other"), MEDIA_TYPE_OCI_MANIFEST);
    } finally {
      // skopeo ignores our lock, and one test has it write here: no other writer while a target is open.
      await target.close();
    }
  });

  test("skopeo copies an artifact this target wrote to a dir: with identical manifest bytes and blobs", async () => {
    const out = path.join(root, "skopeo-dir-out");
    await skopeo("copy", "--quiet", `oci:${ours()}:state-default`, `dir:${out}`);
    assert.deepEqual(await readFile(path.join(out, "manifest.json")), Buffer.from(manifestBytes));
    assert.deepEqual(await readFile(path.join(out, digestOf(STATE).slice(7))), Buffer.from(STATE));
    assert.deepEqual(await readFile(path.join(out, EMPTY_DIGEST.slice(7))), Buffer.from(EMPTY_BLOB));
    const raw = await skopeo("inspect", "--raw", `oci:${ours()}:state-default`);
    assert.equal(raw, new TextDecoder().decode(manifestBytes));
  });

  test("this target reads a layout skopeo wrote, with identical digests and verified blobs", async () => {
    const theirs = path.join(root, "theirs");
    await skopeo("copy", "--quiet", `oci:${ours()}:state-default`, `oci:${theirs}:copied`);
    const index = JSON.parse(await readFile(path.join(theirs, "index.json"), "utf8"));
    assert.equal(index.manifests[0].annotations[ANNOTATION_REF_NAME], "copied");

    const target = createLayoutTarget({ dir: theirs });
    try {
      assert.deepEqual(await target.listTags(), ["copied"]);
      const desc = await target.resolve("copied");
      assert.equal(desc?.digest, manifestDigest);
      const got = await target.fetchManifest("copied");
      assert.ok(got !== null && got.kind === "manifest");
      assert.deepEqual(got.bytes, manifestBytes);
      const manifest = JSON.parse(new TextDecoder().decode(got.bytes));
      for (const blob of [manifest.config, ...manifest.layers]) {
        assert.equal(await target.blobExists(blob.digest), true);
        await collect(await target.fetchBlob(blob));
      }
      assert.deepEqual(await collect(await target.fetchBlob(manifest.layers[0])), Buffer.from(STATE));
      // Writing to a skopeo-made layout keeps skopeo's entry.
      await target.pushManifest("ours-too", got.bytes, MEDIA_TYPE_OCI_MANIFEST);
      assert.deepEqual(await target.listTags(), ["copied", "ours-too"]);
    } finally {
      await target.close();
    }
  });

  test("a tag skopeo adds to our layout (while we are closed) is seen next time, ours kept", async () => {
    await skopeo("copy", "--quiet", `oci:${ours()}:state-default`, `oci:${ours()}:backup`);
    const target = createLayoutTarget({ dir: ours() });
    try {
      assert.deepEqual(await target.listTags(), ["backup", "state-default", "state-other"]);
      assert.equal((await target.resolve("backup"))?.digest, manifestDigest);
      assert.deepEqual((await target.gc({ graceMs: 0 })).removed, []);
    } finally {
      await target.close();
    }
    assert.equal((await skopeo("inspect", "--raw", `oci:${ours()}:backup`)).length, manifestBytes.byteLength);
  });
});
