/** The example program (examples/tfstate-cli.ts) run as a user would, against the service. */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startService } from "./service.ts";

const PACKAGE_DIR = fileURLToPath(new URL("../", import.meta.url));
const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-ts-example-"));
const service = await startService([`--repository=oci-layout:${path.join(dir, "layout")}`]);
after(async () => {
  await service.stop();
  await rm(dir, { recursive: true, force: true });
});

const cliArgs = (args: string[]) => [
  "--import",
  "tsx",
  "examples/tfstate-cli.ts",
  "--url",
  service.url,
  ...args,
];

function cli(args: string[], stdin = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      cliArgs(args),
      { cwd: PACKAGE_DIR, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        if (err !== null && code === -1) reject(err);
        else resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(stdin);
  });
}

test("put, get, lock and unlock", async () => {
  const workspace = `example-${randomBytes(4).toString("hex")}`;
  const state = `{"version":4,"serial":1,"lineage":"${workspace}"}`;
  const file = path.join(dir, "terraform.tfstate");
  await writeFile(file, state);

  const stored = await cli(["put", workspace, file]);
  assert.equal(stored.code, 0, stored.stderr);
  assert.match(stored.stdout, new RegExp(`^stored ${state.length} bytes as sha256:`));
  const got = await cli(["--protocol", "grpc", "get", workspace]);
  assert.deepEqual([got.code, got.stdout], [0, state]);

  const locked = await cli(["lock", workspace]);
  assert.equal(locked.code, 0, locked.stderr);
  const lockId = locked.stdout.trim();
  const refused = await cli(["put", workspace, "-"], "{}");
  assert.equal(refused.code, 1);
  assert.ok(refused.stderr.includes(`lock ID ${lockId}`), refused.stderr);
  assert.equal((await cli(["unlock", workspace, lockId])).code, 0);
  assert.equal((await cli(["put", workspace, "-"], "{}")).code, 0);
});

test("watch prints lock changes and stops cleanly on SIGTERM", async () => {
  const workspace = `example-watch-${randomBytes(4).toString("hex")}`;
  const watcher = spawn(process.execPath, cliArgs(["--protocol", "grpc", "watch", workspace]), {
    cwd: PACKAGE_DIR,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => watcher.once("exit", resolve));
  let out = "";
  watcher.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
  const waitFor = async (line: string) => {
    const deadline = Date.now() + 15_000;
    while (!out.includes(line)) {
      assert.ok(Date.now() < deadline, `no ${JSON.stringify(line)} in:\n${out}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  try {
    await waitFor(`SNAPSHOT_COMPLETE ${workspace}\n`);
    const lockId = (await cli(["lock", workspace])).stdout.trim();
    await waitFor(`\nLOCKED ${workspace} id=${lockId}`);
    assert.equal((await cli(["unlock", workspace, lockId])).code, 0);
    await waitFor(`\nUNLOCKED ${workspace}`);
  } finally {
    watcher.kill("SIGTERM");
  }
  assert.equal(await exited, 0, "the watcher exits 0 when interrupted");
});
