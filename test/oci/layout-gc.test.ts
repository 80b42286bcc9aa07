import assert from "node:assert/strict";
import { readdir, rm, utimes } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DataLossError, InvalidArgumentError } from "../../src/errors.ts";
import { createLayoutTarget, type LayoutTarget } from "../../src/oci/layout.ts";
import { EMPTY_DIGEST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST } from "../../src/oci/media-types.ts";
import { collect, pushArtifact, STATEFILE_TYPE, tempRoot } from "./layout-fixtures.ts";

const HOUR_MS = 60 * 60 * 1000;
let root: string;
let cleanup: () => Promise<void>;
let counter = 0;
const open: LayoutTarget[] = [];

before(async () => {
  ({ root, cleanup } = await tempRoot());
});

after(async () => {
  for (const target of open) await target.close();
  await cleanup();
});

/** The background collection waits an hour here, so these tests see what gc() itself does. */
function newLayout(): { dir: string; target: LayoutTarget } {
  const dir = path.join(root, `layout-${++counter}`);
  const target = createLayoutTarget({ dir, gc: { delayMs: HOUR_MS } });
  open.push(target);
  return { dir, target };
}

function blobFile(dir: string, digest: string): string {
  return path.join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}

/** Makes every blob file look `ageMs` old, as if written that long ago. */
async function ageAllBlobs(dir: string, ageMs: number): Promise<void> {
  const when = new Date(Date.now() - ageMs);
  const blobDir = path.join(dir, "blobs", "sha256");
  for (const name of await readdir(blobDir)) await utimes(path.join(blobDir, name), when, when);
}

/** Pushes a blob whose caller then gives up (its signal aborts): nothing pins it any more. */
async function abandonedBlob(target: LayoutTarget, content: string) {
  const gaveUp = new AbortController();
  const desc = await target.pushBlob({ bytes: new TextEncoder().encode(content) }, STATEFILE_TYPE, {
    signal: gaveUp.signal,
  });
  gaveUp.abort();
  return desc;
}

describe("layout target: garbage collection on demand", () => {
  test("removes old unreferenced blobs, keeps referenced ones, young ones and pushes awaiting their manifest", async () => {
    const { dir, target } = newLayout();
    const kept = await pushArtifact(target, "state-default", "current state");
    const orphan = await abandonedBlob(target, "abandoned upload");
    const waiting = await target.pushBlob(
      { bytes: new TextEncoder().encode("pushed, manifest still to come") },
      STATEFILE_TYPE,
    );
    await ageAllBlobs(dir, 2 * HOUR_MS);
    const young = await abandonedBlob(target, "abandoned a moment ago");

    const result = await target.gc({ graceMs: HOUR_MS });
    assert.deepEqual(result.removed, [{ digest: orphan.digest, size: orphan.size }]);
    assert.equal(result.freedBytes, orphan.size);
    assert.equal(result.keptYoung, 1);
    assert.equal(result.keptPinned, 1);
    assert.equal(result.reachable, 3);
    assert.equal(await target.blobExists(waiting.digest), true);
    assert.equal(await target.blobExists(orphan.digest), false);
    assert.equal(await target.blobExists(young.digest), true);
    const got = await target.fetchManifest("state-default");
    assert.ok(got !== null && got.kind === "manifest");
    assert.equal(String(await collect(await target.fetchBlob(kept.layer))), "current state");
  });

  test("re-pushing an old unreferenced blob pins it again, so gc spares it", async () => {
    const { dir, target } = newLayout();
    const content = new TextEncoder().encode("pushed long ago, pushed again now");
    const blob = await abandonedBlob(target, "pushed long ago, pushed again now");
    await ageAllBlobs(dir, 2 * HOUR_MS);
    await target.pushBlob({ bytes: content }, STATEFILE_TYPE);
    const result = await target.gc({ graceMs: HOUR_MS });
    assert.deepEqual(result.removed, []);
    assert.equal(result.keptYoung + result.keptPinned, 1);
    assert.equal(await target.blobExists(blob.digest), true);
  });

  test("after a delete by digest, gc takes the manifest and its layer but not the config other manifests share", async () => {
    const { dir, target } = newLayout();
    const gone = await pushArtifact(target, "locked-default", "lock");
    const stays = await pushArtifact(target, "state-default", "state");
    await target.deleteManifest(gone.manifest.digest);
    await ageAllBlobs(dir, 2 * HOUR_MS);
    const result = await target.gc({ graceMs: HOUR_MS });
    assert.deepEqual(
      result.removed.map((r) => r.digest).sort(),
      [gone.layer.digest, gone.manifest.digest].sort(),
    );
    assert.equal(await target.blobExists(EMPTY_DIGEST), true);
    assert.equal(await target.blobExists(stays.layer.digest), true);
    assert.equal(await target.blobExists(stays.manifest.digest), true);
  });

  test("keeps what an image index reaches: its child manifests and their blobs", async () => {
    const { dir, target } = newLayout();
    const child = await pushArtifact(target, "child", "child state");
    const indexBytes = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_INDEX,
        manifests: [
          { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: child.manifest.digest, size: child.manifest.size },
        ],
      }),
    );
    await target.pushManifest("multi", indexBytes, MEDIA_TYPE_OCI_INDEX);
    await target.deleteTag("child");
    await ageAllBlobs(dir, 2 * HOUR_MS);
    const result = await target.gc({ graceMs: 0 });
    assert.deepEqual(result.removed, []);
    assert.equal(result.reachable, 4);
    assert.equal(await target.blobExists(child.layer.digest), true);
  });

  test("stops without removing anything when a manifest index.json names is missing", async () => {
    const { dir, target } = newLayout();
    const broken = await pushArtifact(target, "broken", "x");
    const orphan = await abandonedBlob(target, "orphan");
    await rm(blobFile(dir, broken.manifest.digest));
    await ageAllBlobs(dir, 2 * HOUR_MS);
    await assert.rejects(
      target.gc({ graceMs: 0 }),
      (err: unknown) => err instanceof DataLossError && err.message.includes(broken.manifest.digest),
    );
    assert.equal(await target.blobExists(orphan.digest), true);
    assert.equal(await target.blobExists(broken.layer.digest), true);
    await assert.rejects(target.gc({ graceMs: -1 }), InvalidArgumentError);
  });
});
