/**
 * The real CLI process: --help, bad settings (exit 2, one line), configuration reaching the
 * server, and a clean shutdown on SIGTERM/SIGINT (exit 0) while streams are open.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { LockEventKind, StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { startRegistry } from "../harness/registry.ts";
import { client, drain, str, text } from "../rpc/fixture.ts";
import { runCli } from "./cli-process.ts";

const registry = await startRegistry();
test.after(() => registry.stop());

test("--help lists the flags and exits 0", async () => {
  const run = await runCli(["--help"]);
  assert.deepEqual(await run.exited, { code: 0, signal: null });
  for (const flag of [
    "--listen",
    "--repository",
    "--lock-ttl",
    "--max-state-size",
    "--tls-cert",
    "--watch-poll-interval",
  ]) {
    assert.ok(run.stdout().includes(flag), flag);
  }
  assert.match(run.stdout(), /OCI_TFSTATE_LISTEN/);
  assert.match(run.stdout(), /TF_BACKEND_ORAS_RETRY_MAX/);
  assert.equal(run.stderr(), "");
});

test("a bad flag or variable prints one line naming it and exits 2", async () => {
  const flag = await runCli(["--lock-ttl", "forever"]);
  assert.deepEqual(await flag.exited, { code: 2, signal: null });
  assert.equal(
    flag.stderr(),
    'oci-tfstate: invalid --lock-ttl "forever": expected a duration with a unit, such as 500ms, 30s, 10m or 1h30m\n',
  );
  const unknown = await runCli(["--colour"]);
  assert.deepEqual(await unknown.exited, { code: 2, signal: null });
  assert.equal(unknown.stderr(), "oci-tfstate: unknown flag --colour (see --help)\n");
  const env = await runCli([], { TF_BACKEND_ORAS_RETRY_MAX: "many" });
  assert.deepEqual(await env.exited, { code: 2, signal: null });
  assert.equal(
    env.stderr(),
    'oci-tfstate: invalid TF_BACKEND_ORAS_RETRY_MAX "many": expected a whole number (0 or more)\n',
  );
  const tls = await runCli([
    "--listen",
    "127.0.0.1:0",
    "--tls-cert",
    "/no/cert.pem",
    "--tls-key",
    "/no/key.pem",
  ]);
  assert.deepEqual(await tls.exited, { code: 2, signal: null });
  assert.match(tls.stderr(), /^oci-tfstate: cannot read --tls-cert "\/no\/cert\.pem": ENOENT\n$/m);
});

test("settings reach the server; SIGTERM with WatchLock streams open ends them and exits 0", async () => {
  const secret = `pw-${randomBytes(8).toString("hex")}`;
  const repository = `tfstate/cli-${randomBytes(4).toString("hex")}`;
  const run = await runCli(["--listen", "127.0.0.1:0", "--lock-ttl", "90s"], {
    TF_BACKEND_ORAS_REPOSITORY: `${registry.host}/${repository}`,
    TF_BACKEND_ORAS_LOCK_TTL: "45",
    TF_BACKEND_ORAS_RETRY_MAX: "1",
    OCI_TFSTATE_PLAIN_HTTP: "true",
    OCI_TFSTATE_REGISTRY_USERNAME: "tester",
    OCI_TFSTATE_REGISTRY_PASSWORD: secret,
    OCI_TFSTATE_SHUTDOWN_GRACE: "20s",
  });
  const listening = await run.waitForLog("listening");
  const url = String(listening.url);
  const config = listening.config as Record<string, unknown>;
  assert.equal(config.repository, `${registry.host}/${repository}`);
  assert.equal(config.lockTTLMs, 90_000, "the flag beats both variables");
  assert.deepEqual(config.retry, { maxAttempts: 2, initialBackoffMs: 1000, maxBackoffMs: 30_000 });

  const c = client(StateService, "grpc over h2c", url);
  await c.putState({ workspace: "default", state: text('{"serial":1}') });
  const before = Date.now();
  const lock = await c.lock({ workspace: "default", lock: { id: "cli-lock" } });
  assert.ok(lock.expireTime, "a lock TTL gives the lock a lease");
  const lease = timestampMs(lock.expireTime) - before;
  assert.ok(lease > 85_000 && lease < 95_000, `lease of ${lease} ms`);

  const streams = (["grpc over h2c", "connect+json over HTTP/1.1"] as const).map((p) =>
    client(StateService, p, url).watchLock({ workspace: "default" })[Symbol.asyncIterator](),
  );
  for (const s of streams) {
    assert.equal((await s.next()).value?.kind, LockEventKind.SNAPSHOT);
    assert.equal((await s.next()).value?.kind, LockEventKind.SNAPSHOT_COMPLETE);
  }

  const started = Date.now();
  run.child.kill("SIGTERM");
  for (const s of streams) {
    const { error } = await drain({ [Symbol.asyncIterator]: () => s });
    assert.equal(ConnectError.from(error).code, Code.Unavailable);
  }
  assert.deepEqual(await run.exited, { code: 0, signal: null });
  assert.ok(Date.now() - started < 5000, "it did not wait out the 20 s grace period");

  const logs = run.logs();
  assert.deepEqual(
    logs
      .filter((l) => ["shutting down", "stopped"].includes(l.msg))
      .map((l) => [l.msg, l.signal ?? l.exitCode]),
    [
      ["shutting down", "SIGTERM"],
      ["stopped", 0],
    ],
  );
  assert.ok(
    !run.stderr().includes(secret) && !run.stdout().includes(secret),
    "the password never reaches a log",
  );
});

test("with no repository it keeps states in ./data; SIGINT exits 0 and a restart reads them back", async () => {
  const first = await runCli(["--listen", "127.0.0.1:0"]);
  const url = String((await first.waitForLog("listening")).url);
  await client(StateService, "connect+json over HTTP/1.1", url).putState({
    workspace: "default",
    state: text('{"kept":true}'),
  });
  first.child.kill("SIGINT");
  assert.deepEqual(await first.exited, { code: 0, signal: null });
  assert.ok(existsSync(path.join(first.cwd, "data", "oci-layout")), "an OCI image layout under ./data");

  const second = await runCli(["--listen", "127.0.0.1:0"], {}, first.cwd);
  const url2 = String((await second.waitForLog("listening")).url);
  const got = await client(StateService, "grpc over h2c", url2).getState({ workspace: "default" });
  assert.equal(str(got.state), '{"kept":true}');
  second.child.kill("SIGTERM");
  assert.deepEqual(await second.exited, { code: 0, signal: null });
});

test("a port already in use fails with one line naming --listen", async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  test.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const { port } = blocker.address() as net.AddressInfo;
  const run = await runCli(["--listen", `127.0.0.1:${port}`]);
  assert.deepEqual(await run.exited, { code: 1, signal: null });
  assert.match(
    run.stderr(),
    new RegExp(`^oci-tfstate: cannot listen on 127\\.0\\.0\\.1:${port} \\(--listen\\): EADDRINUSE\\n$`, "m"),
  );
});

test("the CLI serves the Terraform http backend on the same port, sharing state with the RPCs", async () => {
  const run = await runCli(["--listen", "127.0.0.1:0"]);
  const url = String((await run.waitForLog("listening")).url);
  const address = `${url}/terraform/state/prod`;
  assert.equal((await fetch(address)).status, 404);
  const body = '{"version":4,"serial":1,"lineage":"cli","resources":[]}';
  const posted = await fetch(address, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
  });
  assert.equal(posted.status, 200);
  const got = await client(StateService, "grpc over h2c", url).getState({ workspace: "prod" });
  assert.equal(str(got.state), body);
  const lock = await fetch(`${address}/lock`, {
    method: "LOCK",
    body: JSON.stringify({
      ID: "cli-lock",
      Operation: "OperationTypeApply",
      Info: "",
      Who: "t@h",
      Version: "1.12.6",
      Created: "2026-11-25T10:00:00Z",
      Path: "",
    }),
  });
  assert.equal(lock.status, 200);
  const held = await fetch(`${address}/lock`, {
    method: "LOCK",
    body: JSON.stringify({
      ID: "other",
      Operation: "OperationTypeApply",
      Info: "",
      Who: "u@h",
      Version: "1.12.6",
      Created: "2026-11-25T10:00:00Z",
      Path: "",
    }),
  });
  assert.equal(held.status, 423);
  assert.equal(((await held.json()) as { ID: string }).ID, "cli-lock");
  run.child.kill("SIGTERM");
  assert.deepEqual(await run.exited, { code: 0, signal: null });
});
