import assert from "node:assert/strict";
import { mkdir, rm, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { NotFoundError } from "../../src/errors.ts";
import { createLayoutTarget, type LayoutGcSettings, type LayoutTarget } from "../../src/oci/layout.ts";
import {
  EMPTY_BLOB,
  EMPTY_DIGEST,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
} from "../../src/oci/media-types.ts";
import {
  artifactManifest,
  collect,
  digestOf,
  pushArtifact,
  STATEFILE_TYPE,
  tempRoot,
} from "./layout-fixtures.ts";
import { blobsOnDisk, reachableOnDisk, tempFiles } from "./layout-gc-fixtures.ts";

const HOUR_MS = 60 * 60 * 1000;
let root: string;
let cleanup: () => Promise<void>;
let counter = 0;
const open = new Set<LayoutTarget>();

before(async () => {
  ({ root, cleanup } = await tempRoot());
});

after(async () => {
  for (const target of open) await target.close();
  await cleanup();
});

class RecordingLogger {
  readonly warnings: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
  readonly debugs: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.warnings.push({ msg, fields });
  }
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.debugs.push({ msg, fields });
  }
}

function newDir(): string {
  return path.join(root, `layout-${++counter}`);
}

function openLayout(dir: string, gc?: LayoutGcSettings, logger?: RecordingLogger): LayoutTarget {
  const target = createLayoutTarget({ dir, gc, logger });
  open.add(target);
  return target;
}

async function closeLayout(target: LayoutTarget): Promise<void> {
  await target.close();
  open.delete(target);
}

function blobFile(dir: string, digest: string): string {
  return path.join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}

/** The blob files are exactly those index.json reaches, checked by walking the files themselves. */
async function assertOnlyReachable(dir: string): Promise<void> {
  const [reachable, stored] = await Promise.all([reachableOnDisk(dir), blobsOnDisk(dir)]);
  assert.deepEqual([...stored.digests].sort(), [...reachable.digests].sort());
  assert.equal(stored.bytes, reachable.bytes);
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

async function onDisk(dir: string, digest: string): Promise<boolean> {
  return (await blobsOnDisk(dir)).digests.has(digest.slice("sha256:".length));
}

/** Pushes a state-like manifest naming a new layer under `tag`. */
async function pushState(target: LayoutTarget, tag: string, content: string) {
  const layer = await target.pushBlob({ bytes: new TextEncoder().encode(content) }, STATEFILE_TYPE);
  const bytes = artifactManifest(layer, { "test.content": content });
  const manifest = await target.pushManifest(tag, bytes, MEDIA_TYPE_OCI_MANIFEST);
  return { layer, manifest };
}

describe("layout target: automatic garbage collection", () => {
  test("a tag moved to a new manifest frees the old manifest and its layer after the delay, with no call", async () => {
    const dir = newDir();
    const logger = new RecordingLogger();
    const target = openLayout(dir, { delayMs: 1000 }, logger);
    const old = await pushArtifact(target, "state-default", "first state");
    await pushArtifact(target, "state-default", "second state");
    // Within the delay a reader that was told about the old manifest still finds it.
    assert.equal(await onDisk(dir, old.manifest.digest), true);
    assert.equal(await onDisk(dir, old.layer.digest), true);
    await eventually("the old manifest and layer are gone", async () => {
      return !(await onDisk(dir, old.manifest.digest)) && !(await onDisk(dir, old.layer.digest));
    });
    await assertOnlyReachable(dir);
    const freed = logger.debugs.find((d) => d.msg.includes("freed"));
    assert.equal(freed?.fields?.removed, 2);
    assert.equal(freed?.fields?.freedBytes, old.manifest.size + old.layer.size);
    assert.deepEqual(
      { removedBlobs: target.gcStats().removedBlobs, pending: target.gcStats().pending },
      { removedBlobs: 2, pending: 0 },
    );
  });

  test("a burst of writes is collected in a few runs, not one per write", async () => {
    const dir = newDir();
    const delayMs = 200;
    const target = openLayout(dir, { delayMs });
    await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
    await target.waitForIdle();
    const writes = 80;
    const started = Date.now();
    for (let i = 0; i < writes; i++) await pushState(target, "state-default", `state ${i}`);
    const elapsed = Date.now() - started;
    await eventually(
      "the burst is collected",
      async () => target.gcStats().removedBlobs === 2 * (writes - 1),
    );
    const { runs } = target.gcStats();
    // One run per delay window, plus one per 32 drops when more than 64 pile up within one.
    const bound = Math.ceil(elapsed / delayMs) + Math.ceil((2 * writes) / 32) + 2;
    assert.ok(runs <= bound, `${runs} runs in ${elapsed} ms`);
    assert.ok(runs < writes / 2, `${runs} runs for ${writes} writes`);
    await assertOnlyReachable(dir);
  });

  test("manifests pushed and deleted over and over (lock cycles) leave nothing behind", async () => {
    const dir = newDir();
    const target = openLayout(dir);
    await pushArtifact(target, "state-default", "the state");
    for (let i = 0; i < 200; i++) {
      const lock = await pushArtifact(target, "locked-default", `lock ${i}`);
      await target.deleteManifest(lock.manifest.digest);
    }
    await target.waitForIdle();
    await assertOnlyReachable(dir);
    assert.equal((await blobsOnDisk(dir)).digests.size, 3);
  });

  test("the empty config blob survives while no manifest names it, in the background, on demand and at open", async () => {
    const dir = newDir();
    let target = openLayout(dir, { delayMs: 0, startGraceMs: 0 });
    const only = await pushArtifact(target, "state-default", "state");
    await target.deleteManifest(only.manifest.digest);
    await target.waitForIdle();
    assert.equal(await target.blobExists(EMPTY_DIGEST), true);
    assert.deepEqual((await target.gc({ graceMs: 0 })).removed, []);
    await closeLayout(target);
    const old = new Date(Date.now() - 2 * HOUR_MS);
    await utimes(blobFile(dir, EMPTY_DIGEST), old, old);
    target = openLayout(dir, { delayMs: 0, startGraceMs: 0 });
    await target.waitForIdle();
    assert.equal(await target.blobExists(EMPTY_DIGEST), true);
    // The state core remembers it as present: a manifest naming it can be pushed at any time.
    const layer = await target.pushBlob({ bytes: new TextEncoder().encode("later") }, STATEFILE_TYPE);
    await target.pushManifest("state-default", artifactManifest(layer), MEDIA_TYPE_OCI_MANIFEST);
  });

  test("a pushed blob is pinned until a manifest names it, then collected once none does", async () => {
    const dir = newDir();
    const target = openLayout(dir, { delayMs: 0 });
    await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
    const layer = await target.pushBlob({ bytes: new TextEncoder().encode("awaiting") }, STATEFILE_TYPE);
    await target.waitForIdle();
    const forced = await target.gc({ graceMs: 0 });
    assert.deepEqual(forced.removed, []);
    // The layer, and the empty config blob, which is always pinned.
    assert.equal(forced.keptPinned, 2);
    assert.equal(target.gcStats().pinnedPushes, 1);
    assert.equal(await target.blobExists(layer.digest), true);

    await target.pushManifest("t", artifactManifest(layer), MEDIA_TYPE_OCI_MANIFEST);
    assert.equal(target.gcStats().pinnedPushes, 0);
    await pushState(target, "t", "replacement");
    await target.waitForIdle();
    assert.equal(await target.blobExists(layer.digest), false);
    await assertOnlyReachable(dir);
  });

  test("a push whose caller gives up frees its blob: signal aborted, deadline passed, lease ended", async () => {
    const dir = newDir();
    const target = openLayout(dir, { delayMs: 0, pinLeaseMs: 300 });
    const bytes = (s: string) => ({ bytes: new TextEncoder().encode(s) });

    const gaveUp = new AbortController();
    const aborted = await target.pushBlob(bytes("aborted"), STATEFILE_TYPE, { signal: gaveUp.signal });
    const timedOut = await target.pushBlob(bytes("deadline"), STATEFILE_TYPE, { deadline: Date.now() + 150 });
    const forgotten = await target.pushBlob(bytes("never named"), STATEFILE_TYPE);
    await target.waitForIdle();
    for (const blob of [aborted, timedOut, forgotten])
      assert.equal(await target.blobExists(blob.digest), true);

    gaveUp.abort();
    await target.waitForIdle();
    assert.equal(await target.blobExists(aborted.digest), false);
    await eventually("the deadline and the lease end", async () => {
      await target.waitForIdle();
      return !(await target.blobExists(timedOut.digest)) && !(await target.blobExists(forgotten.digest));
    });
    assert.equal(target.gcStats().pinnedPushes, 0);
  });

  test("writes racing background and forced collections never lose a referenced blob", async () => {
    const dir = newDir();
    const target = openLayout(dir, { delayMs: 0 });
    await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
    const failures: unknown[] = [];
    let running = true;
    const collector = (async () => {
      while (running) {
        await target.gc({ graceMs: 0 });
        await target.waitForIdle();
      }
    })();
    // Content from a small shared pool as often as unique content: the same blob is pushed by
    // several writers at once, and dropped by one while another still needs it.
    const writer = async (w: number) => {
      for (let i = 0; i < 60; i++) {
        const content = i % 2 === 0 ? `shared ${i % 6}` : `writer ${w} write ${i}`;
        try {
          const layer = await target.pushBlob({ bytes: new TextEncoder().encode(content) }, STATEFILE_TYPE);
          for (let k = 0; k < (i * 7 + w) % 4; k++) await new Promise((r) => setImmediate(r));
          const tag = i % 3 === 0 ? `shared-${i % 2}` : `w${w}-${i % 2}`;
          const manifest = await target.pushManifest(
            tag,
            artifactManifest(layer, { writer: String(w), write: String(i) }),
            MEDIA_TYPE_OCI_MANIFEST,
          );
          if (i % 5 === 4)
            await target.deleteManifest(manifest.digest).catch((err: unknown) => {
              if (!(err instanceof NotFoundError)) throw err;
            });
        } catch (err) {
          failures.push(err);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
    running = false;
    await collector;
    assert.deepEqual(failures, []);
    for (const tag of await target.listTags()) {
      const got = await target.fetchManifest(tag);
      assert.ok(got !== null && got.kind === "manifest", tag);
      const manifest = JSON.parse(new TextDecoder().decode(got.bytes));
      for (const blob of [manifest.config, ...manifest.layers]) await collect(await target.fetchBlob(blob));
    }
    await target.waitForIdle();
    // A blob pushed by two writers at once keeps its second pin until that caller's lease ends:
    // only such shared content may outstay its references.
    const pool = new Set(Array.from({ length: 6 }, (_, i) => digestOf(`shared ${i}`).slice(7)));
    const reachable = await reachableOnDisk(dir);
    for (const hex of (await blobsOnDisk(dir)).digests) {
      assert.ok(
        reachable.digests.has(hex) || pool.has(hex),
        `unreferenced blob ${hex} is not shared content`,
      );
    }
    // Closing ends every pin; the final collection leaves only what index.json reaches.
    await closeLayout(target);
    await assertOnlyReachable(dir);
  });

  test("at open, blobs and temp files a crash left are removed, young blobs once the grace has passed", async () => {
    const dir = newDir();
    let target = openLayout(dir);
    await pushArtifact(target, "state-default", "kept");
    await closeLayout(target);
    const plant = async (content: string, ageMs: number) => {
      const digest = digestOf(content);
      await writeFile(blobFile(dir, digest), content);
      const when = new Date(Date.now() - ageMs);
      await utimes(blobFile(dir, digest), when, when);
      return digest;
    };
    const oldOrphan = await plant("left by a crash an hour ago", HOUR_MS);
    const youngOrphan = await plant("left by a crash just now", 0);
    const tmp = path.join(dir, ".oci-tfstate", "tmp");
    await writeFile(path.join(tmp, "blob-1b2c.tmp"), "partial upload");
    await writeFile(path.join(tmp, "index.json-3d4e.tmp"), "partial index");

    target = openLayout(dir, { startGraceMs: 1500 });
    await target.waitForIdle();
    assert.deepEqual(await tempFiles(dir), []);
    assert.equal(await onDisk(dir, oldOrphan), false);
    assert.equal(await onDisk(dir, youngOrphan), true);
    await eventually("the young orphan's grace has passed", async () => !(await onDisk(dir, youngOrphan)));
    await assertOnlyReachable(dir);
  });

  test("a manifest index.json names that is missing suspends collection with a warning, until it is pushed again", async () => {
    const dir = newDir();
    let target = openLayout(dir);
    const broken = await pushArtifact(target, "broken", "its layer must stay");
    await closeLayout(target);
    await rm(blobFile(dir, broken.manifest.digest));
    const orphan = digestOf("an orphan");
    await writeFile(blobFile(dir, orphan), "an orphan");

    const logger = new RecordingLogger();
    target = openLayout(dir, { startGraceMs: 0, delayMs: 0 }, logger);
    await target.waitForIdle();
    await pushState(target, "other", "a write meanwhile");
    await pushState(target, "other", "and another");
    await target.waitForIdle();
    assert.equal(await onDisk(dir, broken.layer.digest), true);
    assert.equal(await onDisk(dir, orphan), true);
    assert.match(target.gcStats().suspended ?? "", new RegExp(broken.manifest.digest));
    const warned = logger.warnings.filter((w) => w.msg.includes("suspended"));
    assert.equal(warned.length, 1);
    assert.match(String(warned[0]?.fields?.reason), /missing/);

    await target.pushManifest("broken", broken.bytes, MEDIA_TYPE_OCI_MANIFEST);
    await target.waitForIdle();
    assert.equal(target.gcStats().suspended, undefined);
    assert.equal(await onDisk(dir, orphan), false);
    await assertOnlyReachable(dir);
  });

  test("a blob that cannot be removed is logged at warn; writes and later collections go on", async () => {
    const dir = newDir();
    const logger = new RecordingLogger();
    const target = openLayout(dir, { delayMs: 2000 }, logger);
    const first = await pushArtifact(target, "state-default", "one");
    await pushArtifact(target, "state-default", "two");
    // Within the delay, the file becomes something unlink cannot remove.
    await rm(blobFile(dir, first.layer.digest));
    await mkdir(path.join(blobFile(dir, first.layer.digest), "in-the-way"), { recursive: true });
    await target.waitForIdle();
    const warned = logger.warnings.find((w) => w.msg.includes("could not remove"));
    assert.equal(warned?.fields?.digest, first.layer.digest);
    const third = await pushArtifact(target, "state-default", "three");
    await pushArtifact(target, "state-default", "four");
    await target.waitForIdle();
    assert.equal(await target.blobExists(third.layer.digest), false);
    await rm(blobFile(dir, first.layer.digest), { recursive: true });
    await assertOnlyReachable(dir);
  });
});
