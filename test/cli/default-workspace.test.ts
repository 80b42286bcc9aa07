/**
 * A fresh start has a `default` workspace in the store, so the README's
 * `skopeo copy oci:data:state-default …` works before anything was written; a store that refuses
 * the write gets a warning, and the service serves on.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { LockState, StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { startProxy } from "../harness/proxy.ts";
import { startRegistry } from "../harness/registry.ts";
import { client, text } from "../rpc/fixture.ts";
import { runCli, tempDir } from "./cli-process.ts";

function skopeo(args: string[], cwd: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile("skopeo", args, { cwd, timeout: 60_000 }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number(err.code ?? -1), stderr });
    });
  });
}

test("`skopeo copy oci:data:state-default` works on a fresh start, and reads the state once written", async () => {
  const run = await runCli(["--listen", "127.0.0.1:0"]);
  const url = String((await run.waitForLog("listening")).url);
  await run.waitForLog("created the default workspace");
  const out = await tempDir();

  // The README's command, from the directory the service started in.
  const empty = await skopeo(["copy", "oci:data:state-default", `dir:${path.join(out, "empty")}`], run.cwd);
  assert.equal(empty.code, 0, empty.stderr);
  const manifest = JSON.parse(await readFile(path.join(out, "empty", "manifest.json"), "utf8")) as {
    artifactType: string;
    layers: unknown[];
  };
  assert.equal(manifest.artifactType, "application/vnd.terraform.state.v1");
  assert.deepEqual(manifest.layers, [], "an empty workspace: no state yet");

  const state = client(StateService, "connect+json over HTTP/1.1", url);
  await assert.rejects(state.getState({ workspace: "default" }), /not found|no state/i);
  await state.putState({ workspace: "default", state: text('{"serial":1}') });
  const full = await skopeo(["copy", "oci:data:state-default", `dir:${path.join(out, "full")}`], run.cwd);
  assert.equal(full.code, 0, full.stderr);
  const layer = JSON.parse(await readFile(path.join(out, "full", "manifest.json"), "utf8")) as {
    layers: { digest: string }[];
  };
  const blob = await readFile(path.join(out, "full", String(layer.layers[0]?.digest.replace("sha256:", ""))));
  assert.equal(blob.toString(), '{"serial":1}');

  run.child.kill("SIGTERM");
  assert.deepEqual(await run.exited, { code: 0, signal: null });
  const again = await runCli(["--listen", "127.0.0.1:0"], {}, run.cwd);
  await again.waitForLog("storage reachable");
  const url2 = String((await again.waitForLog("listening")).url);
  const kept = await client(StateService, "grpc over h2c", url2).getState({ workspace: "default" });
  assert.equal(new TextDecoder().decode(kept.state), '{"serial":1}', "a restart leaves the state alone");
  again.child.kill("SIGTERM");
  assert.deepEqual(await again.exited, { code: 0, signal: null });
  assert.ok(!again.logs().some((l) => l.msg === "created the default workspace"));
});

test("a store that refuses the write gets a warning, and the service serves on", async () => {
  const registry = await startRegistry();
  const proxy = await startProxy(registry.url);
  test.after(async () => {
    await proxy.stop();
    await registry.stop();
  });
  proxy.fault({
    method: "PUT",
    path: /\/manifests\/state-default$/,
    action: { kind: "status", status: 403 },
  });
  const run = await runCli([
    "--listen",
    "127.0.0.1:0",
    `--repository=${proxy.host}/tfstate/refused`,
    "--plain-http",
  ]);
  const url = String((await run.waitForLog("listening")).url);
  const warning = await run.waitForLog("could not create the default workspace");
  assert.equal(warning.level, "warn");
  const lock = await client(StateService, "grpc over h2c", url).getLock({ workspace: "default" });
  assert.equal(lock.state, LockState.UNLOCKED);
  run.child.kill("SIGTERM");
  assert.deepEqual(await run.exited, { code: 0, signal: null });
});
