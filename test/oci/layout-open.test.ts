import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
} from "../../src/errors.ts";
import { createLayoutTarget } from "../../src/oci/layout.ts";
import { MEDIA_TYPE_OCI_INDEX } from "../../src/oci/media-types.ts";
import { trackForCleanup } from "../harness/cleanup.ts";
import { pushArtifact, tempRoot } from "./layout-fixtures.ts";

let root: string;
let cleanup: () => Promise<void>;
let counter = 0;
const children: ChildProcess[] = [];

before(async () => {
  ({ root, cleanup } = await tempRoot());
});

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
  }
  await cleanup();
});

function newDir(): string {
  return path.join(root, `dir-${++counter}`);
}

class RecordingLogger {
  readonly warnings: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.warnings.push({ msg, fields });
  }
}

const LAYOUT_MODULE = fileURLToPath(new URL("../../src/oci/layout.ts", import.meta.url));

/** Starts another node process that opens the layout at `dir` and holds it until killed. */
async function holdInAnotherProcess(dir: string): Promise<ChildProcess> {
  const script = `
    import { createLayoutTarget } from ${JSON.stringify(LAYOUT_MODULE)};
    createLayoutTarget({ dir: process.env.LAYOUT_DIR });
    process.stdout.write("ready\\n");
    setInterval(() => {}, 60_000);
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    env: { ...process.env, LAYOUT_DIR: dir },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  trackForCleanup(child.pid, undefined);
  let out = "";
  for await (const chunk of child.stdout ?? []) {
    out += String(chunk);
    if (out.includes("ready")) return child;
  }
  throw new Error(`the lock-holding process exited before it was ready (${child.exitCode})`);
}

describe("layout target: opening a directory", () => {
  test("a missing directory becomes an empty OCI image layout", async () => {
    const dir = path.join(newDir(), "nested", "data");
    const target = createLayoutTarget({ dir });
    try {
      assert.equal(target.kind, "layout");
      assert.equal(target.location, dir);
      assert.deepEqual(JSON.parse(await readFile(path.join(dir, "oci-layout"), "utf8")), {
        imageLayoutVersion: "1.0.0",
      });
      assert.deepEqual(JSON.parse(await readFile(path.join(dir, "index.json"), "utf8")), {
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_INDEX,
        manifests: [],
      });
      assert.deepEqual(await readdir(path.join(dir, "blobs", "sha256")), []);
      assert.deepEqual(await target.listTags(), []);
      await target.ping();
    } finally {
      await target.close();
    }
  });

  test("what was written survives close and reopen, and the lock file goes with close", async () => {
    const dir = newDir();
    const first = createLayoutTarget({ dir });
    const { manifest, bytes } = await pushArtifact(first, "state-default", "kept");
    await first.close();
    assert.deepEqual(await readdir(path.join(dir, ".oci-tfstate")), ["tmp"]);
    const second = createLayoutTarget({ dir });
    try {
      assert.deepEqual(await second.listTags(), ["state-default"]);
      const got = await second.fetchManifest("state-default");
      assert.ok(got !== null && got.kind === "manifest");
      assert.equal(got.descriptor.digest, manifest.digest);
      assert.deepEqual(got.bytes, bytes);
    } finally {
      await second.close();
    }
  });

  test("a non-empty directory that is not a layout is refused and left untouched", async () => {
    const dir = newDir();
    await mkdir(dir);
    await writeFile(path.join(dir, "terraform.tfstate"), "{}");
    assert.throws(
      () => createLayoutTarget({ dir }),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.message.includes("not an OCI image layout"),
    );
    assert.deepEqual(await readdir(dir), ["terraform.tfstate"]);
  });

  test("an unsupported imageLayoutVersion, a broken oci-layout and a file path are refused", async () => {
    const dir = newDir();
    await mkdir(dir);
    await writeFile(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"2.0.0"}');
    assert.throws(
      () => createLayoutTarget({ dir }),
      (err: unknown) => err instanceof InvalidArgumentError && err.message.includes('"2.0.0"'),
    );
    await writeFile(path.join(dir, "oci-layout"), "not json");
    assert.throws(() => createLayoutTarget({ dir }), InvalidArgumentError);
    const file = path.join(root, `file-${++counter}`);
    await writeFile(file, "x");
    assert.throws(() => createLayoutTarget({ dir: file }), InvalidArgumentError);
    assert.throws(() => createLayoutTarget({ dir: "" }), InvalidArgumentError);
  });

  test("a layout skopeo-style (no mediaType in index.json) or interrupted after oci-layout opens", async () => {
    const interrupted = newDir();
    await mkdir(interrupted);
    await writeFile(path.join(interrupted, "oci-layout"), '{"imageLayoutVersion": "1.0.0"}');
    const a = createLayoutTarget({ dir: interrupted });
    assert.deepEqual(await a.listTags(), []);
    await a.close();

    const foreign = newDir();
    await mkdir(path.join(foreign, "blobs", "sha256"), { recursive: true });
    await writeFile(path.join(foreign, "oci-layout"), '{"imageLayoutVersion": "1.0.0"}');
    await writeFile(
      path.join(foreign, "index.json"),
      '{"schemaVersion":2,"manifests":[],"annotations":{"k":"v"}}',
    );
    const b = createLayoutTarget({ dir: foreign });
    await pushArtifact(b, "t", "x");
    await b.close();
    const index = JSON.parse(await readFile(path.join(foreign, "index.json"), "utf8"));
    // Fields this store does not know are kept.
    assert.deepEqual(index.annotations, { k: "v" });
    assert.equal(index.mediaType, MEDIA_TYPE_OCI_INDEX);
  });

  test("a corrupt index.json, or blobs without one, is DataLossError", async () => {
    const dir = newDir();
    const target = createLayoutTarget({ dir });
    await pushArtifact(target, "t", "x");
    await target.close();
    await writeFile(path.join(dir, "index.json"), '{"schemaVersion":2,"manifests":[{"digest":"sha256:zz"}]}');
    assert.throws(() => createLayoutTarget({ dir }), DataLossError);
    await writeFile(path.join(dir, "index.json"), '{"schemaVersion":2,');
    assert.throws(() => createLayoutTarget({ dir }), DataLossError);
    await rm(path.join(dir, "index.json"));
    assert.throws(
      () => createLayoutTarget({ dir }),
      (err: unknown) => err instanceof DataLossError && err.message.includes("no index.json"),
    );
    // A refused open releases the lock it took.
    assert.deepEqual(await readdir(path.join(dir, ".oci-tfstate")), ["tmp"]);
  });

  test("temp files left by an interrupted write are removed at open, with a warning", async () => {
    const dir = newDir();
    await createLayoutTarget({ dir }).close();
    await writeFile(path.join(dir, ".oci-tfstate", "tmp", "blob-leftover.tmp"), "partial");
    const logger = new RecordingLogger();
    const target = createLayoutTarget({ dir, logger });
    await target.close();
    assert.deepEqual(await readdir(path.join(dir, ".oci-tfstate", "tmp")), []);
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0]?.msg ?? "", /temp files/);
  });

  test("a second target on one directory in this process is refused until the first closes", async () => {
    const dir = newDir();
    const first = createLayoutTarget({ dir });
    assert.throws(() => createLayoutTarget({ dir }), FailedPreconditionError);
    // The same directory by another spelling is the same directory.
    assert.throws(() => createLayoutTarget({ dir: `${dir}/./` }), FailedPreconditionError);
    await first.close();
    await assert.rejects(first.listTags(), FailedPreconditionError);
    await first.close();
    const second = createLayoutTarget({ dir });
    await second.close();
  });

  test("a directory held by a live process is refused naming its pid; once it is killed the lock is taken over", async () => {
    const dir = newDir();
    const child = await holdInAnotherProcess(dir);
    assert.throws(
      () => createLayoutTarget({ dir }),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        err.message.includes(`process ${child.pid}`) &&
        err.message.includes(path.join(dir, ".oci-tfstate", "lock")),
    );
    child.kill("SIGKILL");
    await once(child, "exit");
    const logger = new RecordingLogger();
    const target = createLayoutTarget({ dir, logger });
    try {
      assert.ok(
        logger.warnings.some(
          (w) => w.msg.includes("stale") && String(w.fields?.reason).includes(`${child.pid}`),
        ),
      );
      await pushArtifact(target, "after-takeover", "x");
      assert.deepEqual(await target.listTags(), ["after-takeover"]);
    } finally {
      await target.close();
    }
  });

  test("lock files: another host's is honoured; an earlier boot's, our own pid's or an old unreadable one is stale", async () => {
    const dir = newDir();
    await createLayoutTarget({ dir }).close();
    const lockFile = path.join(dir, ".oci-tfstate", "lock");
    const lockOf = (fields: Record<string, unknown>) =>
      JSON.stringify({
        pid: 4242,
        hostname: hostname(),
        since: "2026-01-01T00:00:00Z",
        token: "t",
        ...fields,
      });

    await writeFile(lockFile, lockOf({ hostname: "build-agent-7", pid: process.pid }));
    assert.throws(
      () => createLayoutTarget({ dir }),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        err.message.includes("host build-agent-7") &&
        err.message.includes(lockFile),
    );

    const stale = [
      lockOf({ pid: 1, bootId: "00000000-0000-0000-0000-000000000000" }),
      lockOf({ pid: process.pid }),
      "{trunca",
    ];
    for (const content of stale) {
      await writeFile(lockFile, content);
      const old = new Date(Date.now() - 60_000);
      await utimes(lockFile, old, old);
      const logger = new RecordingLogger();
      const target = createLayoutTarget({ dir, logger });
      await target.close();
      assert.equal(logger.warnings.length, 1, content);
      assert.match(logger.warnings[0]?.msg ?? "", /stale/);
    }
    // An unreadable lock file that is new may be mid-creation by its holder.
    await writeFile(lockFile, "");
    assert.throws(() => createLayoutTarget({ dir }), FailedPreconditionError);
  });

  test("a target whose lock file was taken over refuses to write and fails ping", async () => {
    const dir = newDir();
    const target = createLayoutTarget({ dir });
    try {
      await writeFile(
        path.join(dir, ".oci-tfstate", "lock"),
        '{"pid":1,"hostname":"elsewhere","since":"x","token":"t"}\n',
      );
      await assert.rejects(target.ping(), UnavailableError);
      await assert.rejects(pushArtifact(target, "t", "x"), UnavailableError);
      assert.deepEqual(await target.listTags(), []);
    } finally {
      await target.close();
    }
    // Not ours any more, so close left it in place.
    assert.match(await readFile(path.join(dir, ".oci-tfstate", "lock"), "utf8"), /elsewhere/);
  });
});
