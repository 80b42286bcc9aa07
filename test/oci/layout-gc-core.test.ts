import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createLayoutTarget, type LayoutTarget } from "../../src/oci/layout.ts";
import { type Backend, createBackend } from "../../src/oras/index.ts";
import { ARTIFACT_TYPE_LOCK } from "../../src/oras/wire-format.ts";
import { trackForCleanup } from "../harness/cleanup.ts";
import { lockInfo } from "../oras/fixture.ts";
import { digestOf } from "./layout-fixtures.ts";
import { blobCount, blobsOnDisk, fastRoot, reachableOnDisk, tempFiles } from "./layout-gc-fixtures.ts";

let root: string;
let cleanup: () => Promise<void>;
let counter = 0;
const backends = new Set<Backend>();
const children: ChildProcess[] = [];

before(async () => {
  ({ root, cleanup } = await fastRoot());
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  for (const backend of backends) await backend.close();
  await cleanup();
});

function newDir(): string {
  return path.join(root, `layout-${++counter}`);
}

function openBackend(dir: string): Backend {
  const backend = createBackend({ repository: `oci-layout:${dir}`, maxVersions: 3 });
  backends.add(backend);
  return backend;
}

async function closeBackend(backend: Backend): Promise<void> {
  await backend.close();
  backends.delete(backend);
}

function layoutOf(backend: Backend): LayoutTarget {
  assert.equal(backend.target.kind, "layout");
  return backend.target as LayoutTarget;
}

async function settle(backend: Backend): Promise<void> {
  await backend.waitForRetention();
  await layoutOf(backend).waitForIdle();
}

async function assertOnlyReachable(dir: string): Promise<void> {
  const [reachable, stored] = await Promise.all([reachableOnDisk(dir), blobsOnDisk(dir)]);
  assert.deepEqual([...stored.digests].sort(), [...reachable.digests].sort());
  assert.equal(stored.bytes, reachable.bytes);
}

/** What index.json reaches now; a walk that meets a blob collected under it starts again. */
async function reachableCount(dir: string): Promise<number> {
  for (;;) {
    try {
      return (await reachableOnDisk(dir)).digests.size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

const state = (ws: string, serial: number) =>
  new TextEncoder().encode(JSON.stringify({ version: 4, serial, lineage: `lineage-${ws}`, outputs: {} }));

describe("layout store: disk use stays bounded through the state core", () => {
  test("3,000 state writes at maxVersions 3 leave exactly what index.json reaches, bounded all along", async (t) => {
    const dir = newDir();
    const backend = openBackend(dir);
    const workspaces = ["default", "alpha", "beta", "gamma"];
    for (const ws of workspaces.slice(1)) await backend.createWorkspace(ws);
    const perWorkspace = 750;
    let maxExcess = 0;
    let maxBlobs = 0;
    const writer = async (ws: string, sampling: boolean) => {
      const mgr = backend.stateMgr(ws);
      for (let serial = 1; serial <= perWorkspace; serial++) {
        await mgr.put(state(ws, serial));
        if (sampling && serial % 25 === 0) {
          const stored = await blobCount(dir);
          maxBlobs = Math.max(maxBlobs, stored);
          maxExcess = Math.max(maxExcess, stored - (await reachableCount(dir)));
        }
      }
    };
    await Promise.all(workspaces.map((ws, i) => writer(ws, i === 0)));
    await settle(backend);

    await assertOnlyReachable(dir);
    // Per workspace: 3 versions (the current state is one of them), each a manifest and a layer;
    // and the empty config blob.
    assert.equal((await blobsOnDisk(dir)).digests.size, workspaces.length * 6 + 1);
    for (const ws of workspaces) {
      const got = await backend.stateMgr(ws).get();
      assert.deepEqual(got?.data, state(ws, perWorkspace));
      assert.deepEqual(
        (await backend.stateMgr(ws).listVersions()).map((v) => v.version),
        [perWorkspace - 2, perWorkspace - 1, perWorkspace],
      );
    }
    // At most 64 dropped blobs wait for the collection delay, plus the few a run is removing.
    assert.ok(maxExcess <= 100, `up to ${maxExcess} unreferenced blobs during the run`);
    assert.ok(maxBlobs <= 160, `up to ${maxBlobs} blob files during the run`);
    t.diagnostic(`3000 writes: at most ${maxBlobs} blob files, ${maxExcess} unreferenced`);
  });

  test("lock and unlock cycles leave no lock manifests behind", async () => {
    const dir = newDir();
    const backend = openBackend(dir);
    const mgr = backend.stateMgr("default");
    await mgr.put(state("default", 1));
    for (let i = 0; i < 150; i++) {
      const id = `lock-${i}`;
      await mgr.lock(lockInfo(id));
      await mgr.unlock(id);
    }
    await settle(backend);
    await assertOnlyReachable(dir);
    for (const hex of (await blobsOnDisk(dir)).digests) {
      const text = await readFile(path.join(dir, "blobs", "sha256", hex), "utf8");
      assert.ok(!text.includes(ARTIFACT_TYPE_LOCK), `lock manifest ${hex} left behind`);
    }
  });

  test("deleting a workspace frees its blobs", async () => {
    const dir = newDir();
    const backend = openBackend(dir);
    await backend.stateMgr("default").put(state("default", 1));
    await backend.createWorkspace("doomed");
    for (let serial = 1; serial <= 20; serial++)
      await backend.stateMgr("doomed").put(state("doomed", serial));
    await settle(backend);
    const before = (await reachableOnDisk(dir)).digests;
    await backend.deleteWorkspace("doomed", true);
    await settle(backend);
    await assertOnlyReachable(dir);
    const left = (await blobsOnDisk(dir)).digests;
    // The default workspace's manifest and layer, and the empty config.
    assert.equal(left.size, 3);
    // Its three versions, a manifest and a layer each.
    assert.equal(before.size, left.size + 6);
    assert.equal(left.has(digestOf(state("doomed", 20)).slice(7)), false);
  });
});

const BACKEND_MODULE = fileURLToPath(new URL("../../src/oras/index.ts", import.meta.url));

/** A process writing states as fast as it can, printing each acknowledged write. */
function startWriter(dir: string): ChildProcess {
  const script = `
    import { createBackend } from ${JSON.stringify(BACKEND_MODULE)};
    const backend = createBackend({ repository: "oci-layout:" + process.env.LAYOUT_DIR, maxVersions: 3 });
    const put = async (ws) => {
      for (let serial = 1; ; serial++) {
        await backend.stateMgr(ws).put(new TextEncoder().encode(JSON.stringify({ version: 4, serial, lineage: ws })));
        process.stdout.write(ws + " " + serial + "\\n");
      }
    };
    await backend.createWorkspace("second");
    await Promise.all([put("default"), put("second")]);
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    env: { ...process.env, LAYOUT_DIR: dir },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  trackForCleanup(child.pid, undefined);
  return child;
}

describe("layout store: after a crash", () => {
  test("a writer killed with SIGKILL mid-run leaves nothing the next open does not clean, and loses no acknowledged write", async () => {
    const dir = newDir();
    const child = startWriter(dir);
    const acked = new Map<string, number>();
    let out = "";
    for await (const chunk of child.stdout ?? []) {
      out += String(chunk);
      const lines = out.split("\n");
      out = lines.pop() ?? "";
      for (const line of lines) {
        const [ws, serial] = line.split(" ");
        if (ws !== undefined && serial !== undefined) acked.set(ws, Number(serial));
      }
      if ((acked.get("default") ?? 0) >= 150 && (acked.get("second") ?? 0) >= 150) break;
    }
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    // What else a crash can leave: a half-written temp file and a blob whose manifest never came.
    await writeFile(path.join(dir, ".oci-tfstate", "tmp", "blob-0a1b.tmp"), "half an upload");
    const stray = new TextEncoder().encode("pushed, then the process died");
    await writeFile(path.join(dir, "blobs", "sha256", digestOf(stray).slice(7)), stray);

    // The crash was just now: without a grace period, everything it left is collected at open.
    const target = createLayoutTarget({ dir, gc: { startGraceMs: 0 } });
    const backend = createBackend({ repository: `oci-layout:${dir}`, target, maxVersions: 3 });
    backends.add(backend);
    await layoutOf(backend).waitForIdle();
    assert.deepEqual(await tempFiles(dir), []);
    await assertOnlyReachable(dir);
    for (const [ws, serial] of acked) {
      const got = await backend.stateMgr(ws).get();
      assert.ok(got !== null, ws);
      const written = JSON.parse(new TextDecoder().decode(got.data)) as { serial: number };
      assert.ok(written.serial >= serial, `${ws}: serial ${written.serial} < acknowledged ${serial}`);
    }
    await closeBackend(backend);
    await assertOnlyReachable(dir);
  });
});
