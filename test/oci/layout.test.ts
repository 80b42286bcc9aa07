import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CanceledError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from "../../src/errors.ts";
import { createLayoutTarget, type LayoutTarget } from "../../src/oci/layout.ts";
import {
  ANNOTATION_REF_NAME,
  EMPTY_BLOB,
  EMPTY_DIGEST,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
} from "../../src/oci/media-types.ts";
import {
  artifactManifest,
  collect,
  digestOf,
  pushArtifact,
  STATE_TYPE,
  STATEFILE_TYPE,
  tempRoot,
} from "./layout-fixtures.ts";

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

function newLayout(): { dir: string; target: LayoutTarget } {
  const dir = path.join(root, `layout-${++counter}`);
  const target = createLayoutTarget({ dir });
  open.push(target);
  return { dir, target };
}

function blobFile(dir: string, digest: string): string {
  return path.join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}

async function readIndexJson(dir: string): Promise<{
  schemaVersion: number;
  mediaType: string;
  manifests: Array<{
    mediaType: string;
    digest: string;
    size: number;
    artifactType?: string;
    annotations?: Record<string, string>;
  }>;
}> {
  return JSON.parse(await readFile(path.join(dir, "index.json"), "utf8"));
}

/** Deterministic pseudo-random bytes in chunks of varying sizes. */
async function* chunkedContent(total: number, seed: string): AsyncGenerator<Uint8Array> {
  let block = createHash("sha256").update(seed).digest();
  let sent = 0;
  let i = 0;
  while (sent < total) {
    const size = Math.min(total - sent, 1 + ((i * 7919) % 300_000));
    const chunk = Buffer.alloc(size);
    for (let off = 0; off < size; off += block.length) {
      block = createHash("sha256").update(block).digest();
      block.copy(chunk, off);
    }
    sent += size;
    i++;
    yield chunk;
  }
}

describe("layout target: blobs", () => {
  test("a blob pushed from bytes reads back verified, and blobExists sees it", async () => {
    const { dir, target } = newLayout();
    const content = new TextEncoder().encode('{"version":4,"serial":1}');
    assert.equal(await target.blobExists(digestOf(content)), false);
    const desc = await target.pushBlob({ bytes: content }, STATEFILE_TYPE);
    assert.deepEqual(desc, {
      mediaType: STATEFILE_TYPE,
      digest: digestOf(content),
      size: content.byteLength,
    });
    assert.equal(await target.blobExists(desc.digest), true);
    assert.deepEqual(await readFile(blobFile(dir, desc.digest)), Buffer.from(content));
    assert.deepEqual(await collect(await target.fetchBlob(desc)), Buffer.from(content));
  });

  test("a multi-MiB stream in odd-sized chunks is stored under its digest and leaves no temp file", async () => {
    const { dir, target } = newLayout();
    const total = 6 * 1024 * 1024 + 12_345;
    const expected = createHash("sha256");
    for await (const chunk of chunkedContent(total, "big")) expected.update(chunk);
    const digest = `sha256:${expected.digest("hex")}`;

    const desc = await target.pushBlob({ stream: chunkedContent(total, "big") }, "application/octet-stream");
    assert.deepEqual(desc, { mediaType: "application/octet-stream", digest, size: total });
    const back = await collect(await target.fetchBlob(desc));
    assert.equal(back.byteLength, total);
    assert.equal(digestOf(back), digest);
    assert.deepEqual(await readdir(path.join(dir, ".oci-tfstate", "tmp")), []);
  });

  test("pushing the same content again, as bytes or as a stream, keeps one file with the same digest", async () => {
    const { dir, target } = newLayout();
    const content = new TextEncoder().encode("same state");
    const first = await target.pushBlob({ bytes: content }, STATEFILE_TYPE);
    const second = await target.pushBlob({ bytes: content }, STATEFILE_TYPE);
    const third = await target.pushBlob(
      {
        stream: (async function* () {
          yield content.subarray(0, 4);
          yield content.subarray(4);
        })(),
      },
      STATEFILE_TYPE,
    );
    assert.deepEqual(second, first);
    assert.deepEqual(third, first);
    assert.deepEqual(await readdir(path.join(dir, "blobs", "sha256")), [first.digest.slice(7)]);
  });

  test("a stream past maxSize fails with onTooLarge's error and leaves neither blob nor temp file", async () => {
    const { dir, target } = newLayout();
    const chunks = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2), Buffer.alloc(1000, 3)];
    let limitSeen = -1;
    await assert.rejects(
      target.pushBlob(
        {
          stream: (async function* () {
            yield* chunks;
          })(),
        },
        STATEFILE_TYPE,
        {
          maxSize: 2500,
          onTooLarge: (limit) => {
            limitSeen = limit;
            return new ResourceExhaustedError(`state over ${limit}`, limit);
          },
        },
      ),
      (err: unknown) => err instanceof ResourceExhaustedError && err.message === "state over 2500",
    );
    assert.equal(limitSeen, 2500);
    assert.equal(await target.blobExists(digestOf(Buffer.concat(chunks))), false);
    assert.deepEqual(await readdir(path.join(dir, ".oci-tfstate", "tmp")), []);
    assert.deepEqual(await readdir(path.join(dir, "blobs", "sha256")), []);

    await assert.rejects(
      target.pushBlob({ bytes: Buffer.alloc(11) }, STATEFILE_TYPE, { maxSize: 10 }),
      (err: unknown) => err instanceof ResourceExhaustedError && err.limit === 10,
    );
    // Exactly at the limit is allowed.
    const ok = await target.pushBlob({ bytes: Buffer.alloc(10) }, STATEFILE_TYPE, { maxSize: 10 });
    assert.equal(ok.size, 10);
  });

  test("a missing blob: blobExists is false and fetchBlob throws NotFoundError", async () => {
    const { target } = newLayout();
    const digest = digestOf("never pushed");
    assert.equal(await target.blobExists(digest), false);
    await assert.rejects(target.fetchBlob({ digest, size: 12 }), NotFoundError);
  });

  test("a corrupt blob file fails the read with DataLossError", async () => {
    const { dir, target } = newLayout();
    const desc = await target.pushBlob({ bytes: new TextEncoder().encode("good content") }, STATEFILE_TYPE);
    // Same length, different bytes: found only by the digest check at the end of the stream.
    await writeFile(blobFile(dir, desc.digest), "evil content");
    const stream = await target.fetchBlob(desc);
    await assert.rejects(
      collect(stream),
      (err: unknown) => err instanceof DataLossError && err.message.includes(desc.digest),
    );
    // Another length: refused before the first byte.
    await writeFile(blobFile(dir, desc.digest), "short");
    await assert.rejects(target.fetchBlob(desc), DataLossError);
  });

  test("an aborted signal cancels an upload waiting for its next chunk and removes the temp file", async () => {
    const { dir, target } = newLayout();
    const controller = new AbortController();
    const stalled = (async function* () {
      yield Buffer.alloc(4096, 7);
      await new Promise(() => undefined);
    })();
    setTimeout(() => controller.abort(new Error("client went away")), 30);
    await assert.rejects(
      target.pushBlob({ stream: stalled }, STATEFILE_TYPE, { signal: controller.signal }),
      CanceledError,
    );
    assert.deepEqual(await readdir(path.join(dir, ".oci-tfstate", "tmp")), []);
  });

  test("an aborted read stops with CanceledError, and a past deadline is DeadlineExceededError", async () => {
    const { target } = newLayout();
    const desc = await target.pushBlob({ stream: chunkedContent(2 * 1024 * 1024, "abort") }, STATEFILE_TYPE);
    const controller = new AbortController();
    const stream = await target.fetchBlob(desc, { signal: controller.signal });
    let got = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) {
          got += chunk.byteLength;
          controller.abort();
        }
      })(),
      CanceledError,
    );
    assert.ok(got < desc.size);
    await assert.rejects(target.blobExists(desc.digest, { deadline: Date.now() - 1 }), DeadlineExceededError);
  });
});

describe("layout target: manifests", () => {
  test("an artifact pushed under a tag resolves, and fetches byte-identical by tag and by digest", async () => {
    const { dir, target } = newLayout();
    const { manifest, bytes } = await pushArtifact(target, "state-default", '{"serial":1}');
    assert.deepEqual(manifest, {
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      digest: digestOf(bytes),
      size: bytes.byteLength,
      artifactType: STATE_TYPE,
    });
    assert.deepEqual(await target.resolve("state-default"), manifest);
    assert.deepEqual(await target.resolve(manifest.digest), manifest);
    for (const ref of ["state-default", manifest.digest]) {
      const got = await target.fetchManifest(ref);
      assert.ok(got !== null && got.kind === "manifest");
      assert.deepEqual(got.bytes, bytes);
      assert.deepEqual(got.descriptor, manifest);
    }
    assert.deepEqual(JSON.parse(await readFile(path.join(dir, "oci-layout"), "utf8")), {
      imageLayoutVersion: "1.0.0",
    });
    const index = await readIndexJson(dir);
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, MEDIA_TYPE_OCI_INDEX);
    assert.deepEqual(index.manifests, [
      {
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        digest: manifest.digest,
        size: manifest.size,
        artifactType: STATE_TYPE,
        annotations: { [ANNOTATION_REF_NAME]: "state-default" },
      },
    ]);
    assert.deepEqual(await readFile(blobFile(dir, manifest.digest)), Buffer.from(bytes));
  });

  test("pushing another manifest under a tag replaces only that tag's entry", async () => {
    const { dir, target } = newLayout();
    const a1 = await pushArtifact(target, "a", "a1");
    const b = await pushArtifact(target, "b", "b");
    const a2 = await pushArtifact(target, "a", "a2");
    assert.notEqual(a1.manifest.digest, a2.manifest.digest);
    assert.equal((await target.resolve("a"))?.digest, a2.manifest.digest);
    assert.equal((await target.resolve("b"))?.digest, b.manifest.digest);
    const index = await readIndexJson(dir);
    assert.deepEqual(
      index.manifests.map((m) => [m.annotations?.[ANNOTATION_REF_NAME], m.digest]),
      [
        ["a", a2.manifest.digest],
        ["b", b.manifest.digest],
      ],
    );
    // The replaced manifest is no longer in the index, so it is gone by digest too.
    assert.equal(await target.resolve(a1.manifest.digest), null);
    assert.deepEqual(await target.listTags(), ["a", "b"]);
  });

  test("a manifest pushed by digest is stored untagged; a digest that does not match is refused", async () => {
    const { dir, target } = newLayout();
    await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
    const layer = await target.pushBlob({ bytes: new TextEncoder().encode("x") }, STATEFILE_TYPE);
    const bytes = artifactManifest(layer);
    const digest = digestOf(bytes);
    const desc = await target.pushManifest(digest, bytes, MEDIA_TYPE_OCI_MANIFEST);
    assert.equal(desc.digest, digest);
    assert.deepEqual(await target.listTags(), []);
    assert.deepEqual(await target.resolve(digest), desc);
    const index = await readIndexJson(dir);
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0]?.annotations, undefined);

    const other = digestOf("something else");
    await assert.rejects(
      target.pushManifest(other, bytes, MEDIA_TYPE_OCI_MANIFEST),
      (err: unknown) => err instanceof InvalidArgumentError && err.message.includes(digest),
    );
    assert.equal(await target.resolve(other), null);
    // Tagging it later replaces the untagged entry rather than listing the manifest twice.
    await target.pushManifest("later", bytes, MEDIA_TYPE_OCI_MANIFEST);
    assert.deepEqual(
      (await readIndexJson(dir)).manifests.map((m) => m.annotations?.[ANNOTATION_REF_NAME]),
      ["later"],
    );
  });

  test("deleting by digest removes every tag on it, then its blob and layer; a second delete is NotFoundError", async () => {
    const { dir, target } = newLayout();
    const { manifest, bytes, layer } = await pushArtifact(target, "locked-default", "lock");
    await target.pushManifest("alias", bytes, MEDIA_TYPE_OCI_MANIFEST);
    const other = await pushArtifact(target, "state-default", "state");
    await target.deleteManifest(manifest.digest);
    assert.equal(await target.resolve("locked-default"), null);
    assert.equal(await target.resolve("alias"), null);
    assert.equal(await target.resolve(manifest.digest), null);
    assert.equal(await target.fetchManifest("alias"), null);
    assert.deepEqual(await target.listTags(), ["state-default"]);
    assert.equal((await target.resolve("state-default"))?.digest, other.manifest.digest);
    // Garbage collection takes the manifest and the layer only it named.
    await target.waitForIdle();
    assert.equal(await target.blobExists(manifest.digest), false);
    assert.equal(await target.blobExists(layer.digest), false);
    assert.equal(await target.blobExists(other.layer.digest), true);
    assert.deepEqual(
      (await readIndexJson(dir)).manifests.map((m) => m.digest),
      [other.manifest.digest],
    );
    await assert.rejects(target.deleteManifest(manifest.digest), NotFoundError);
  });

  test("deleteTag removes only that tag; the manifest stays under its other tag", async () => {
    const { target } = newLayout();
    const { manifest, bytes } = await pushArtifact(target, "one", "content");
    await target.pushManifest("two", bytes, MEDIA_TYPE_OCI_MANIFEST);
    await target.deleteTag("one");
    assert.equal(await target.resolve("one"), null);
    assert.equal((await target.resolve("two"))?.digest, manifest.digest);
    assert.deepEqual(await target.listTags(), ["two"]);
    await assert.rejects(target.deleteTag("one"), NotFoundError);
  });

  test("a conditional fetch answers unchanged while the digest matches, and the manifest once it moved", async () => {
    const { target } = newLayout();
    const first = await pushArtifact(target, "state-default", "v1");
    assert.deepEqual(await target.fetchManifest("state-default", { ifNoneMatch: first.manifest.digest }), {
      kind: "unchanged",
      digest: first.manifest.digest,
    });
    const second = await pushArtifact(target, "state-default", "v2");
    const got = await target.fetchManifest("state-default", { ifNoneMatch: first.manifest.digest });
    assert.ok(got !== null && got.kind === "manifest");
    assert.deepEqual(got.bytes, second.bytes);
  });

  test("a corrupt manifest blob is DataLossError naming the tag", async () => {
    const { dir, target } = newLayout();
    const { manifest, bytes } = await pushArtifact(target, "state-prod", "state");
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 3] = "X".charCodeAt(0);
    await writeFile(blobFile(dir, manifest.digest), tampered);
    await assert.rejects(
      target.fetchManifest("state-prod"),
      (err: unknown) => err instanceof DataLossError && err.message.includes('tag "state-prod"'),
    );
    await writeFile(blobFile(dir, manifest.digest), tampered.subarray(0, 10));
    await assert.rejects(target.fetchManifest(manifest.digest), DataLossError);
  });

  test("unknown tags and digests are null; invalid ones are InvalidArgumentError", async () => {
    const { target } = newLayout();
    await pushArtifact(target, "known", "x");
    assert.equal(await target.resolve("unknown"), null);
    assert.equal(await target.fetchManifest("unknown"), null);
    assert.equal(await target.resolve(digestOf("nothing")), null);
    assert.equal(await target.fetchManifest(digestOf("nothing")), null);
    await assert.rejects(target.deleteManifest(digestOf("nothing")), NotFoundError);
    assert.ok((await target.resolve(`Upper_case.ok-${"x".repeat(113)}`)) === null);
    for (const bad of ["", "-dash", ".dot", "a+b", "a/b", "x".repeat(129), "sha256:abc", "md5:00"]) {
      await assert.rejects(target.resolve(bad), InvalidArgumentError, bad);
    }
    await assert.rejects(target.deleteTag("a b"), InvalidArgumentError);
    await assert.rejects(target.blobExists("sha256:XYZ"), InvalidArgumentError);
  });

  test("a manifest naming a blob the layout lacks is refused with an error naming the blob", async () => {
    const { target } = newLayout();
    const layer = await target.pushBlob({ bytes: new TextEncoder().encode("layer") }, STATEFILE_TYPE);
    // The empty config was never pushed.
    const bytes = artifactManifest(layer);
    await assert.rejects(
      target.pushManifest("state-x", bytes, MEDIA_TYPE_OCI_MANIFEST),
      (err: unknown) => err instanceof FailedPreconditionError && err.message.includes(EMPTY_DIGEST),
    );
    assert.equal(await target.resolve("state-x"), null);
    await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
    const missingLayer = { mediaType: STATEFILE_TYPE, digest: digestOf("not here"), size: 8 };
    await assert.rejects(
      target.pushManifest("state-x", artifactManifest(missingLayer), MEDIA_TYPE_OCI_MANIFEST),
      (err: unknown) => err instanceof FailedPreconditionError && err.message.includes(missingLayer.digest),
    );
    const wrongSize = { ...layer, size: layer.size + 1 };
    await assert.rejects(
      target.pushManifest("state-x", artifactManifest(wrongSize), MEDIA_TYPE_OCI_MANIFEST),
      InvalidArgumentError,
    );
    assert.deepEqual(await target.listTags(), []);
  });

  test("malformed manifests are refused: not JSON, wrong mediaType field, unsupported type", async () => {
    const { target } = newLayout();
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    await assert.rejects(
      target.pushManifest("t", enc("x").subarray(1), MEDIA_TYPE_OCI_MANIFEST),
      InvalidArgumentError,
    );
    await assert.rejects(
      target.pushManifest(
        "t",
        enc({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] }),
        MEDIA_TYPE_OCI_MANIFEST,
      ),
      InvalidArgumentError,
    );
    await assert.rejects(
      target.pushManifest("t", enc({ schemaVersion: 2 }), "application/json"),
      InvalidArgumentError,
    );
    await assert.rejects(
      target.pushManifest("t", enc({ schemaVersion: 2, layers: [] }), MEDIA_TYPE_OCI_MANIFEST),
      InvalidArgumentError,
    );
    assert.deepEqual(await target.listTags(), []);
  });

  test("an image index under a tag makes the manifests it lists resolvable by digest", async () => {
    const { target } = newLayout();
    const child = await pushArtifact(target, "child-tag", "child");
    await target.deleteTag("child-tag");
    // Untagged now, so not in index.json: an index has to list it. Push it back by digest first.
    await target.pushManifest(child.manifest.digest, child.bytes, MEDIA_TYPE_OCI_MANIFEST);
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
    await target.deleteManifest(child.manifest.digest);
    // Gone from index.json, still listed by the image index: found, and its blob was kept.
    const found = await target.fetchManifest(child.manifest.digest);
    assert.ok(found !== null && found.kind === "manifest");
    assert.deepEqual(found.bytes, child.bytes);
    await assert.rejects(target.deleteManifest(child.manifest.digest), FailedPreconditionError);
  });
});
