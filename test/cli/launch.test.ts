/**
 * The entry point `node src/launch.ts`: it becomes the CLI in the same process (same PID) with the
 * V8 settings added, passes the CLI its arguments and exit status, and leaves alone a setting the
 * operator gave. A probe module loaded with --import reports each program the process runs.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { tempDir } from "./cli-process.ts";

const LAUNCH = path.resolve("src/launch.ts");
const CLI = path.resolve("src/cli.ts");

interface Probe {
  pid: number;
  execArgv: string[];
  main: string;
}

interface Run {
  pid: number;
  code: number | null;
  stdout: string;
  probes: Probe[];
  /** stderr lines that are not probe records. */
  other: string[];
}

let probeDir = "";
let probe = "";

before(async () => {
  probeDir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-launch-"));
  probe = path.join(probeDir, "probe.mjs");
  await writeFile(
    probe,
    "process.stderr.write(`probe ${JSON.stringify({ pid: process.pid, execArgv: process.execArgv, " +
      "main: process.argv[1] })}\\n`);\n",
  );
});

after(() => rm(probeDir, { recursive: true, force: true }));

async function launch(nodeFlags: string[], args: string[], env: Record<string, string> = {}): Promise<Run> {
  const dir = await tempDir();
  const child = spawn(process.execPath, [...nodeFlags, "--import", probe, LAUNCH, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  const lines = stderr.split("\n").filter((l) => l !== "");
  return {
    pid: child.pid ?? -1,
    code,
    stdout,
    probes: lines.filter((l) => l.startsWith("probe ")).map((l) => JSON.parse(l.slice(6)) as Probe),
    other: lines.filter((l) => !l.startsWith("probe ")),
  };
}

test("becomes the CLI in the same process, with the semi-space setting before the caller's flags", async () => {
  const run = await launch([], ["--version"]);
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^oci-tfstate \S+\n$/);
  assert.deepEqual(run.probes, [
    { pid: run.pid, execArgv: ["--import", probe], main: LAUNCH },
    { pid: run.pid, execArgv: ["--max-semi-space-size=1", "--import", probe], main: CLI },
  ]);
});

test("passes the arguments and the exit status through", async () => {
  const run = await launch([], ["--colour"]);
  assert.equal(run.code, 2);
  assert.deepEqual(run.other, ["oci-tfstate: unknown flag --colour (see --help)"]);
  assert.equal(run.probes.at(-1)?.main, CLI);
});

test("keeps a semi-space size given in NODE_OPTIONS and runs the CLI without re-executing", async () => {
  const run = await launch([], ["--version"], { NODE_OPTIONS: "--max-semi-space-size=4" });
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^oci-tfstate \S+\n$/);
  assert.deepEqual(run.probes, [{ pid: run.pid, execArgv: ["--import", probe], main: LAUNCH }]);
});

test("keeps a semi-space size given as a node flag, in V8's underscore spelling too", async () => {
  const run = await launch(["--max_semi_space_size=2"], ["--version"]);
  assert.equal(run.code, 0);
  assert.deepEqual(run.probes, [
    { pid: run.pid, execArgv: ["--max_semi_space_size=2", "--import", probe], main: LAUNCH },
  ]);
});
