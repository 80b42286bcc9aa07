/**
 * The secure default in the real process: with no identity configured the service serves anonymous
 * callers only on loopback. On any other address it refuses to start, exit 2, with one line naming
 * the fix, unless the operator passes --allow-anonymous or configures identity.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { exposureRefusal, loopbackOnly } from "../../src/config/exposure.ts";
import { runCli, tempDir } from "./cli-process.ts";

const at = (host: string) => ({ host, port: 8080 });

test("loopback is 127.0.0.0/8, ::1 and localhost; anything else is exposed", () => {
  for (const host of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost", "LOCALHOST"])
    assert.equal(loopbackOnly(at(host)), true, host);
  for (const host of [
    "",
    "0.0.0.0",
    "::",
    "[::]",
    "10.0.0.1",
    "192.168.1.2",
    "tfstate.internal",
    "128.0.0.1",
    "::2",
  ])
    assert.equal(loopbackOnly(at(host)), false, host);
});

test("the refusal names the address and every way out; identity or --allow-anonymous lifts it", () => {
  const refusal = exposureRefusal(at("0.0.0.0"), false, false);
  assert.ok(refusal !== undefined);
  assert.match(refusal, /0\.0\.0\.0:8080/);
  for (const fix of [
    "--tokens-file",
    "--oidc-issuer",
    "--oidc-config",
    "--allow-anonymous",
    "--listen 127.0.0.1",
  ])
    assert.ok(refusal.includes(fix), `names ${fix}`);
  assert.equal(refusal.includes("\n"), false, "one line");
  assert.equal(exposureRefusal(at("0.0.0.0"), true, false), undefined);
  assert.equal(exposureRefusal(at("0.0.0.0"), false, true), undefined);
  assert.equal(exposureRefusal(at("127.0.0.1"), false, false), undefined);
});

async function start(args: string[], env: Record<string, string> = {}) {
  const dir = await tempDir();
  const run = await runCli(["--repository", `oci-layout:${path.join(dir, "data")}`, ...args], env, dir);
  return { run, dir };
}

test("a non-loopback listener without identity exits 2 with the one-line message; nothing is served", async () => {
  for (const listen of ["0.0.0.0:0", "[::]:0"]) {
    const { run } = await start(["--listen", listen]);
    const { code } = await run.exited;
    assert.equal(code, 2, listen);
    const lines = run.stderr().trim().split("\n");
    assert.equal(lines.length, 1, `one line: ${run.stderr()}`);
    assert.match(lines[0] as string, /refusing to listen on .* with no identity configured/);
    assert.match(lines[0] as string, /--allow-anonymous/);
    assert.equal(run.stderr().includes('"listening"'), false);
  }
  // The variable is the flag.
  const { run } = await start([], { OCI_TFSTATE_LISTEN: "0.0.0.0:0" });
  assert.equal((await run.exited).code, 2);
});

test("--allow-anonymous (or its variable) starts it, and says so at warn", async () => {
  for (const [args, env] of [
    [["--listen", "0.0.0.0:0", "--allow-anonymous"], {}],
    [["--listen", "0.0.0.0:0"], { OCI_TFSTATE_ALLOW_ANONYMOUS: "true" }],
  ] as const) {
    const { run } = await start([...args], { ...env });
    const listening = await run.waitForLog("listening", 30_000);
    const warned = run.logs().find((l) => l.msg.startsWith("serving anonymous callers beyond loopback"));
    assert.equal(warned?.level, "warn");
    const port = new URL(String(listening.url)).port;
    const res = await fetch(`http://127.0.0.1:${port}/tfstate.v1.WorkspaceService/ListWorkspaces`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200, "anonymous callers are served, as asked");
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
  }
});

test("with a tokens file a non-loopback listener starts, and anonymous callers are refused", async () => {
  const dir = await tempDir();
  const file = path.join(dir, "tokens.yaml");
  await writeFile(file, "tokens: []\n");
  const { run } = await start(["--listen", "0.0.0.0:0", "--tokens-file", file]);
  const listening = await run.waitForLog("listening", 30_000);
  assert.equal(
    run.logs().some((l) => l.msg.startsWith("serving anonymous callers")),
    false,
  );
  const port = new URL(String(listening.url)).port;
  const res = await fetch(`http://127.0.0.1:${port}/tfstate.v1.WorkspaceService/ListWorkspaces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(res.status, 401);
  assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer realm="oci-tfstate"/);
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0);
});
