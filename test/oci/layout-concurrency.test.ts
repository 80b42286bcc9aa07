import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createLayoutTarget, type LayoutTarget } from "../../src/oci/layout.ts";
import {
  ANNOTATION_REF_NAME,
  EMPTY_BLOB,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
} from "../../src/oci/media-types.ts";
import { artifactManifest, STATEFILE_TYPE, tempRoot } from "./layout-fixtures.ts";

let root: string;
let cleanup: () => Promise<void>;
let counter = 0;

before(async () => {
  ({ root, cleanup } = await tempRoot());
});

after(async () => {
  await cleanup();
});

async function tagsOnDisk(dir: string): Promise<string[]> {
  const index = JSON.parse(await readFile(path.join(dir, "index.json"), "utf8")) as {
    manifests: Array<{ annotations?: Record<string, string> }>;
  };
  return index.manifests.map((m) => m.annotations?.[ANNOTATION_REF_NAME] ?? "").sort();
}

/** Pushes `count` different manifests under `tag-<i>`, all at once. */
async function pushMany(target: LayoutTarget, count: number, prefix: string): Promise<string[]> {
  await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
  const tags = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);
  await Promise.all(
    tags.map(async (tag) => {
      const layer = await target.pushBlob(
        { bytes: new TextEncoder().encode(`state of ${tag}`) },
        STATEFILE_TYPE,
      );
      await target.pushManifest(tag, artifactManifest(layer), MEDIA_TYPE_OCI_MANIFEST);
    }),
  );
  return tags;
}

describe("layout target: concurrent use in one process", () => {
  test("50 pushManifest calls on different tags from Promise.all all end up in index.json", async () => {
    const dir = path.join(root, `layout-${++counter}`);
    const target = createLayoutTarget({ dir });
    let tags: string[];
    try {
      tags = await pushMany(target, 50, "tag");
      assert.deepEqual(await target.listTags(), tags);
      assert.deepEqual(await tagsOnDisk(dir), tags);
    } finally {
      await target.close();
    }
    const reopened = createLayoutTarget({ dir });
    try {
      assert.deepEqual(await reopened.listTags(), tags);
      for (const tag of tags) {
        const got = await reopened.fetchManifest(tag);
        assert.ok(got !== null && got.kind === "manifest", tag);
      }
    } finally {
      await reopened.close();
    }
  });

  test("index.json read in a loop while writes run is always complete, valid JSON", async () => {
    const dir = path.join(root, `layout-${++counter}`);
    const target = createLayoutTarget({ dir });
    let writing = true;
    let reads = 0;
    const seenCounts = new Set<number>();
    const reader = (async () => {
      while (writing) {
        const text = await readFile(path.join(dir, "index.json"), "utf8");
        const index = JSON.parse(text) as { manifests: unknown[] };
        seenCounts.add(index.manifests.length);
        reads++;
      }
    })();
    try {
      const tags = await pushMany(target, 80, "w");
      // Deletes rewrite index.json too.
      await Promise.all(tags.slice(0, 40).map((tag) => target.deleteTag(tag)));
      assert.deepEqual(await target.listTags(), tags.slice(40));
    } finally {
      writing = false;
      await reader;
      await target.close();
    }
    assert.ok(reads > 20, `only ${reads} reads ran alongside the writes`);
    // The reader saw intermediate states, so it really overlapped the writes.
    assert.ok(seenCounts.size > 2, `reader saw only ${[...seenCounts].join(",")} entries`);
    assert.deepEqual((await tagsOnDisk(dir)).length, 40);
  });

  test("interleaved pushes, retags and deletes of one tag leave index.json matching the last call", async () => {
    const dir = path.join(root, `layout-${++counter}`);
    const target = createLayoutTarget({ dir });
    try {
      await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
      const manifests = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const layer = await target.pushBlob({ bytes: new TextEncoder().encode(`v${i}`) }, STATEFILE_TYPE);
          return artifactManifest(layer);
        }),
      );
      const calls: Array<Promise<unknown>> = [];
      for (const [i, bytes] of manifests.entries()) {
        calls.push(target.pushManifest("state-default", bytes, MEDIA_TYPE_OCI_MANIFEST));
        if (i % 3 === 2) calls.push(target.deleteTag("state-default"));
      }
      await Promise.all(calls);
      const last = await target.resolve("state-default");
      const expected = await target.pushManifest(
        "probe",
        manifests[9] ?? new Uint8Array(),
        MEDIA_TYPE_OCI_MANIFEST,
      );
      assert.equal(last?.digest, expected.digest);
      assert.deepEqual(await tagsOnDisk(dir), ["probe", "state-default"]);
    } finally {
      await target.close();
    }
  });
});
