/**
 * The real OpenTofu CLI (built by scripts/install-tofu.sh) against the real service: init, apply,
 * a blocked apply, force-unlock and destroy, with only the built-in `terraform_data` resource, so
 * nothing is downloaded. Fails, never skips, when the CLI is missing.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { basicAuthenticator } from "./basic-auth.ts";
import { startTfhttpFixture } from "./fixture.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TOFU = execFileSync("bash", [path.join(ROOT, "scripts/install-tofu.sh"), "--path"], {
  encoding: "utf8",
}).trim();

const CONFIG = `
terraform {
  backend "http" {}
}

resource "terraform_data" "first" {
  input = "hello"
}

resource "terraform_data" "second" {
  input = "\${terraform_data.first.output}, world"
}

output "greeting" {
  value = terraform_data.second.output
}
`;

assert.ok(existsSync(TOFU), `OpenTofu is not installed at ${TOFU}: run scripts/install-tofu.sh`);
const fx = await startTfhttpFixture({
  authenticate: basicAuthenticator({ tofu: "pa:ss word" }),
  route: { lockWaitMs: 2000 },
});
let dir: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-tofu-"));
  const cliConfig = path.join(dir, "empty.tfrc");
  await writeFile(cliConfig, "");
  await writeFile(path.join(dir, "main.tf"), CONFIG);
  env = {
    PATH: process.env.PATH,
    HOME: dir,
    TF_CLI_CONFIG_FILE: cliConfig,
    CHECKPOINT_DISABLE: "1",
    TF_IN_AUTOMATION: "1",
    TF_INPUT: "0",
    // A failed request is not worth the CLI's default 1 s+ retries in a test.
    TF_HTTP_RETRY_MAX: "0",
  };
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tofu(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(TOFU, [...args, "-no-color"], { cwd: dir, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const rpcLock = (id: string) => ({
  id,
  operation: "OperationTypeApply",
  info: "",
  who: "rpc@host",
  version: "",
  created: "",
  path: "",
});

async function until(cond: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not seen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function ok(run: Run, what: string): Run {
  assert.equal(run.code, 0, `${what} failed:\n${run.stdout}\n${run.stderr}`);
  return run;
}

describe("tofu against the http backend", () => {
  let ws: string;
  let address: string;

  before(() => {
    ws = `e2e/${fx.workspaceName("tofu")}`;
    address = `${fx.url}/terraform/state/${encodeURIComponent(ws)}`;
  });

  test("tofu init with the backend given through -backend-config", async () => {
    const run = ok(
      await tofu(
        "init",
        "-input=false",
        `-backend-config=address=${address}`,
        `-backend-config=lock_address=${address}/lock`,
        `-backend-config=unlock_address=${address}/lock`,
        "-backend-config=username=tofu",
        "-backend-config=password=pa:ss word",
      ),
      "tofu init",
    );
    assert.match(run.stdout, /Successfully configured the backend "http"/);
    assert.equal(await fx.coordinator.getState(ws), null);
  });

  test("tofu apply stores the state through the service and releases its lock", async () => {
    const seen = fx.requestLog.length;
    const run = ok(await tofu("apply", "-auto-approve", "-input=false"), "tofu apply");
    const calls = fx.requestLog.slice(seen);
    assert.deepEqual(
      new Set(calls.map((c) => c.principal)),
      new Set(["tofu"]),
      "every call authenticated as tofu",
    );
    assert.equal(calls[0]?.method, "LOCK");
    assert.equal(calls.at(-1)?.method, "UNLOCK");
    const writes = calls.filter((c) => c.method === "POST");
    assert.ok(writes.length >= 1, "at least the final write");
    assert.ok(
      writes.every((w) => /^ID=[0-9a-f-]{36}$/.test(w.query)),
      `writes carry the lock ID: ${writes.map((w) => w.query).join(" ")}`,
    );
    assert.match(run.stdout, /Apply complete! Resources: 2 added, 0 changed, 0 destroyed/);
    const stored = await fx.coordinator.getState(ws);
    assert.ok(stored, "the state is in the registry");
    const state = JSON.parse(Buffer.from(stored.data).toString()) as {
      resources: Array<{ type: string; name: string }>;
      outputs: Record<string, { value: unknown }>;
    };
    assert.deepEqual(state.resources.map((r) => `${r.type}.${r.name}`).sort(), [
      "terraform_data.first",
      "terraform_data.second",
    ]);
    assert.equal(state.outputs.greeting?.value, "hello, world");
    assert.equal((await fx.coordinator.getLock(ws)).state, "unlocked");
  });

  test("tofu apply is refused while another holder has the lock, and shows that holder", async () => {
    await fx.coordinator.lock(ws, {
      id: "11111111-2222-3333-4444-555555555555",
      operation: "OperationTypeApply",
      info: "",
      who: "erin@other-host",
      version: "1.12.6",
      created: "2026-11-25T10:00:00Z",
      path: "",
    });
    const run = await tofu("apply", "-auto-approve", "-input=false");
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /Error acquiring the state lock/);
    assert.match(run.stderr, /ID:\s+11111111-2222-3333-4444-555555555555/);
    assert.match(run.stderr, /Who:\s+erin@other-host/);
  });

  test("tofu force-unlock with the holder's ID releases it", async () => {
    const run = ok(
      await tofu("force-unlock", "-force", "11111111-2222-3333-4444-555555555555"),
      "force-unlock",
    );
    assert.match(run.stdout, /OpenTofu state has been successfully unlocked!/);
    assert.equal((await fx.coordinator.getLock(ws)).state, "unlocked");
  });

  test("tofu apply -lock-timeout keeps its place in line across its retries, ahead of a later RPC waiter", async () => {
    const holder = "22222222-3333-4444-5555-666666666666";
    await fx.coordinator.lock(ws, { ...rpcLock(holder), who: "erin@other-host" });
    const seen = fx.requestLog.length;
    const locks = () => fx.requestLog.slice(seen).filter((c) => c.method === "LOCK").length;
    const apply = tofu("apply", "-auto-approve", "-input=false", "-lock-timeout=60s");
    await until(() => locks() >= 1, "tofu's first LOCK", 30_000);
    // The RPC caller comes after tofu's first LOCK, which is answered 423 after 2 s.
    const rpc = fx.coordinator.lock(ws, rpcLock("rpc-after-tofu"), { waitMs: 60_000 }).then(() => {
      const unlocked = fx.requestLog.slice(seen).some((c) => c.method === "UNLOCK");
      return fx.coordinator.unlock(ws, "rpc-after-tofu").then(() => unlocked);
    });
    // tofu sleeps 1 s and sends LOCK again with the same ID: its place is still first.
    await until(() => locks() >= 2, "tofu's retried LOCK", 10_000);
    await fx.coordinator.unlock(ws, holder);
    const run = ok(await apply, "tofu apply -lock-timeout=60s");
    assert.match(run.stdout, /Apply complete!/);
    assert.equal(await rpc, true, "the RPC caller got the lock only after tofu's UNLOCK");
  });

  test("tofu destroy empties the state", async () => {
    const run = ok(await tofu("destroy", "-auto-approve", "-input=false"), "tofu destroy");
    assert.match(run.stdout, /Destroy complete! Resources: 2 destroyed/);
    const stored = await fx.coordinator.getState(ws);
    assert.ok(stored);
    assert.deepEqual(
      (JSON.parse(Buffer.from(stored.data).toString()) as { resources: unknown[] }).resources,
      [],
    );
    assert.equal((await fx.coordinator.getLock(ws)).state, "unlocked");
  });
});
