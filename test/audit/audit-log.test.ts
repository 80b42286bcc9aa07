/**
 * The audit log (src/audit) read back: one record per state read and state change over both
 * surfaces, with the documented fields and nothing else (no state bytes, no credentials), reads
 * sampled off on request, and a log that fails or is rotated never failing a request.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type AuditLog, openAuditLog } from "../../src/audit/audit-log.ts";
import { createCoordinator } from "../../src/coordinator/index.ts";
import { UnauthenticatedError } from "../../src/errors.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import { stopGracefully } from "../../src/http/lifecycle.ts";
import { type Authenticator, createServer, type Principal } from "../../src/http/server.ts";
import type { Logger } from "../../src/log.ts";
import { createBackend } from "../../src/oras/index.ts";
import { createTerraformHttpRoute } from "../../src/tfhttp/index.ts";
import { runCli } from "../cli/cli-process.ts";

const SECRET = "otfs_AuditTestSecretTokenThatMustNeverBeLogged00";
const MARKER = "state-content-that-must-never-be-in-the-audit-log";
const CI: Principal = { method: "token", name: "ci-deploy", token: "ci-deploy" } as Principal;

const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-audit-"));
after(() => rm(dir, { recursive: true, force: true }));

/** Bearer or Basic (password = the token), as the identity spec puts credentials on the wire. */
const authenticate: Authenticator = async (req) => {
  const auth = req.headers.get("authorization");
  if (auth === null) throw new UnauthenticatedError("credentials required");
  const basic = auth.startsWith("Basic ")
    ? Buffer.from(auth.slice(6), "base64").toString().split(":").slice(1).join(":")
    : undefined;
  if (auth === `Bearer ${SECRET}` || basic === SECRET) return CI;
  throw new UnauthenticatedError("the credentials were not accepted");
};

interface Served {
  url: string;
  audit: AuditLog;
  logs: { level: string; msg: string; fields: Record<string, unknown> | undefined }[];
}

let served = 0;
async function serve(auditOpts: { destination: string; reads?: number }): Promise<Served> {
  const logs: Served["logs"] = [];
  const record =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      logs.push({ level, msg, fields });
    };
  const logger: Logger = {
    debug: record("debug"),
    info: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
  const audit = openAuditLog({ ...auditOpts, logger });
  const backend = createBackend({ repository: `oci-layout:${dir}/store-${served++}`, maxVersions: 5 });
  const coordinator = createCoordinator({ backend, logger });
  const maxStateSize = 1024 * 1024;
  const server = createServer({
    coordinator,
    logger,
    maxStateSize,
    authenticate,
    audit,
    routes: [createTerraformHttpRoute({ coordinator, logger, maxStateSize, audit, lockWaitMs: 0 })],
  });
  const { url } = await server.listen(0);
  after(async () => {
    await stopGracefully(server, coordinator);
    await audit.close();
  });
  return { url, audit, logs };
}

const state = (serial: number) =>
  JSON.stringify({ version: 4, serial, lineage: "audit", outputs: { note: { value: MARKER } } });

const basicAuth = `Basic ${Buffer.from(`ci:${SECRET}`).toString("base64")}`;

async function tf(
  url: string,
  method: string,
  target: string,
  body?: string,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`${url}/terraform/state/${target}`, {
    method,
    headers: { authorization: basicAuth, ...headers },
    ...(body !== undefined ? { body } : {}),
  });
  await res.arrayBuffer();
  return res;
}

/** Waits until the log has written `count` records (writes are buffered), then reads them back. */
async function readBack(file: string, audit: AuditLog, count: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 500 && audit.stats().written < count; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(audit.stats().written, count, "records written");
  const text = await readFile(file, "utf8");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const FIELDS = [
  "time",
  "request_id",
  "principal",
  "remote_address",
  "surface",
  "method",
  "workspace",
  "version",
  "digest",
  "lock_id",
  "result",
];

test("a sequence over both surfaces reads back as exactly the expected records, with no state bytes or secrets", async () => {
  const file = path.join(dir, "audit.jsonl");
  const { url, audit } = await serve({ destination: file });
  const headers = { authorization: `Bearer ${SECRET}` };
  const rpc = createClient(StateService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
  const grpc = createClient(StateService, createGrpcTransport({ baseUrl: url }));
  const workspaces = createClient(
    WorkspaceService,
    createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
  );
  const ws = "audited";

  let answeredId: string | null = null;
  await rpc.putState(
    { workspace: ws, state: Buffer.from(state(1)) },
    { headers, onHeader: (h) => (answeredId = h.get("x-request-id")) },
  );
  await rpc.getState({ workspace: ws }, { headers });
  await rpc.lock({ workspace: ws, lock: { id: "rpc-lock-1", operation: "apply" } }, { headers });
  const fenced = await tf(url, "POST", ws, state(2));
  assert.equal(fenced.status, 409, "a write without the holder's ID is refused");
  await rpc.putState({ workspace: ws, state: Buffer.from(state(3)), lockId: "rpc-lock-1" }, { headers });
  await rpc.unlock({ workspace: ws, lockId: "rpc-lock-1" }, { headers });
  // Not audited: lock state and listings.
  await rpc.getLock({ workspace: ws }, { headers });
  await rpc.listVersions({ workspace: ws }, { headers });
  await workspaces.listWorkspaces({}, { headers });

  assert.equal((await tf(url, "POST", ws, state(4))).status, 200);
  const read = await tf(url, "GET", ws, undefined, { "x-request-id": "trace-abc-123" });
  assert.equal(read.status, 200);
  assert.equal(read.headers.get("x-request-id"), "trace-abc-123", "the caller's request ID is returned");
  const lockInfo = JSON.stringify({ ID: "tf-lock-1", Operation: "OperationTypeApply", Who: "ci@runner" });
  assert.equal((await tf(url, "LOCK", `${ws}/lock`, lockInfo)).status, 200);
  assert.equal((await tf(url, "POST", `${ws}?ID=tf-lock-1`, state(5))).status, 200);
  assert.equal((await tf(url, "UNLOCK", `${ws}/lock`, lockInfo)).status, 200);

  // Streams: a download's record comes when it ends, an upload's header names the workspace.
  for await (const _ of grpc.downloadState({ workspace: ws }, { headers })) {
    // read to the end
  }
  await grpc.uploadState(
    (async function* () {
      yield { payload: { case: "header" as const, value: { workspace: ws, lockId: "" } } };
      yield { payload: { case: "chunk" as const, value: Buffer.from(state(6)) } };
    })(),
    { headers },
  );

  // Refused before the caller is known: recorded as anonymous, with the code.
  await assert.rejects(rpc.putState({ workspace: ws, state: Buffer.from(state(7)) }), /credentials required/);
  const anonymous = await fetch(`${url}/terraform/state/${ws}`, { method: "POST", body: state(8) });
  assert.equal(anonymous.status, 401);
  await anonymous.arrayBuffer();

  const all = await readBack(file, audit, 15);
  const S = "tfstate.v1.StateService";
  const TF = "/terraform/state/{workspace}";
  assert.deepEqual(
    all.map((r) => [r.surface, r.method, r.workspace ?? null, r.lock_id ?? null, r.result]),
    [
      ["rpc", `${S}/PutState`, ws, null, "ok"],
      ["rpc", `${S}/GetState`, ws, null, "ok"],
      ["rpc", `${S}/Lock`, ws, "rpc-lock-1", "ok"],
      ["http", `POST ${TF}`, ws, null, "failed_precondition"],
      ["rpc", `${S}/PutState`, ws, "rpc-lock-1", "ok"],
      ["rpc", `${S}/Unlock`, ws, "rpc-lock-1", "ok"],
      ["http", `POST ${TF}`, ws, null, "ok"],
      ["http", `GET ${TF}`, ws, null, "ok"],
      ["http", `LOCK ${TF}/lock`, ws, "tf-lock-1", "ok"],
      ["http", `POST ${TF}`, ws, "tf-lock-1", "ok"],
      ["http", `UNLOCK ${TF}/lock`, ws, "tf-lock-1", "ok"],
      ["rpc", `${S}/DownloadState`, ws, null, "ok"],
      ["rpc", `${S}/UploadState`, ws, null, "ok"],
      // Refused before the request was read: no workspace.
      ["rpc", `${S}/PutState`, null, null, "unauthenticated"],
      ["http", `POST ${TF}`, ws, null, "unauthenticated"],
    ],
  );

  for (const r of all) {
    const keys = Object.keys(r);
    assert.deepEqual(
      keys,
      FIELDS.filter((f) => keys.includes(f)),
      "documented fields only, in order",
    );
    assert.match(String(r.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(String(r.request_id), /^[\x21-\x7e]{1,128}$/);
    assert.match(String(r.remote_address), /127\.0\.0\.1$/);
  }
  const authenticated = all.filter((r) => r.result !== "unauthenticated");
  for (const r of authenticated) {
    assert.deepEqual(r.principal, { method: "token", name: "ci-deploy", token: "ci-deploy" });
  }
  for (const r of all.filter((r) => r.result === "unauthenticated")) {
    assert.deepEqual(r.principal, { method: "anonymous", name: "anonymous" });
  }
  // Every successful read and write names the revision; versions count up across both surfaces.
  const revisions = all.filter(
    (r) =>
      r.result === "ok" &&
      /PutState|GetState|UploadState|DownloadState|\/terraform\/state\/\{workspace\}$/.test(String(r.method)),
  );
  for (const r of revisions) assert.match(String(r.digest), /^sha256:[0-9a-f]{64}$/, String(r.method));
  assert.deepEqual(
    revisions.map((r) => r.version),
    [1, 1, 2, 3, 3, 4, 4, 5],
  );
  assert.equal(all[7]?.request_id, "trace-abc-123");
  // A generated ID is the one the response carried, on both surfaces.
  assert.equal(all[0]?.request_id, answeredId);
  assert.equal(all[3]?.request_id, fenced.headers.get("x-request-id"));
  assert.equal(new Set(all.map((r) => r.request_id)).size, all.length, "one request ID per call");

  const text = await readFile(file, "utf8");
  assert.ok(!text.includes(MARKER), "no state content");
  assert.ok(!text.includes(Buffer.from(MARKER).toString("base64").slice(0, 20)), "not even encoded");
  assert.ok(!text.includes(SECRET), "no token");
  assert.ok(!text.includes(basicAuth.slice(6)), "no Basic credentials");
  assert.ok(!/authorization|bearer|basic /i.test(text), "no Authorization value");
});

test("--audit-reads off: changes are recorded, reads are not", async () => {
  const file = path.join(dir, "changes-only.jsonl");
  const { url, audit } = await serve({ destination: file, reads: 0 });
  const headers = { authorization: `Bearer ${SECRET}` };
  const rpc = createClient(StateService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
  await rpc.putState({ workspace: "quiet", state: Buffer.from(state(1)) }, { headers });
  await rpc.getState({ workspace: "quiet" }, { headers });
  for await (const _ of rpc.downloadState({ workspace: "quiet" }, { headers })) {
    // read to the end
  }
  assert.equal((await tf(url, "GET", "quiet")).status, 200);
  assert.equal((await tf(url, "HEAD", "quiet")).status, 200);
  assert.equal((await tf(url, "POST", "quiet", state(2))).status, 200);
  const records = await readBack(file, audit, 2);
  assert.deepEqual(
    records.map((r) => r.method),
    ["tfstate.v1.StateService/PutState", "POST /terraform/state/{workspace}"],
  );
});

test("a fraction of reads is sampled", async () => {
  const file = path.join(dir, "sampled.jsonl");
  let n = 0;
  const audit = openAuditLog({ destination: file, reads: 0.25, logger: silent, random: () => (n++ % 4) / 4 });
  after(() => audit.close());
  const picked = Array.from({ length: 8 }, () => audit.sampleRead());
  assert.deepEqual(picked, [true, false, false, false, true, false, false, false]);
});

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

test("a log whose writes fail loses those records, says so once at error, and fails no request", async () => {
  const { url, audit, logs } = await serve({ destination: "/dev/full" });
  for (let serial = 1; serial <= 3; serial++) {
    assert.equal((await tf(url, "POST", "full-disk", state(serial))).status, 200);
  }
  assert.equal((await tf(url, "GET", "full-disk")).status, 200);
  for (let i = 0; i < 500 && audit.stats().failed < 4; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(audit.stats(), { written: 0, failed: 4 });
  const complaints = logs.filter((l) => l.msg === "audit records are being lost");
  assert.equal(complaints.length, 1);
  assert.equal(complaints[0]?.level, "error");
  assert.equal(complaints[0]?.fields?.error, "ENOSPC");
});

test("reopen() after a rotation writes to a new file at the same path", async () => {
  const file = path.join(dir, "rotated.jsonl");
  const audit = openAuditLog({ destination: file, logger: silent });
  after(() => audit.close());
  const event = {
    requestId: "r1",
    principal: { method: "anonymous", name: "anonymous" },
    remoteAddress: undefined,
    surface: "http" as const,
    method: "GET /terraform/state/{workspace}",
    workspace: "w",
    result: "ok",
  };
  audit.record(event);
  await readBack(file, audit, 1);
  await rename(file, `${file}.1`);
  audit.reopen();
  audit.record({ ...event, requestId: "r2" });
  const fresh = await readBack(file, audit, 2);
  assert.deepEqual(
    fresh.map((r) => r.request_id),
    ["r2"],
  );
  const old = (await readFile(`${file}.1`, "utf8")).trim().split("\n");
  assert.equal(old.length, 1);
  assert.throws(() => openAuditLog({ destination: path.join(dir, "no", "such", "dir"), logger: silent }), {
    code: "ENOENT",
  });
});

test("the CLI refuses to start with an audit log it cannot open, and writes records to stderr with -", async () => {
  const bad = await runCli(["--listen", "127.0.0.1:0", "--audit-log", "/no/such/dir/audit.jsonl"]);
  assert.equal((await bad.exited).code, 2);
  assert.match(bad.stderr(), /cannot open --audit-log "\/no\/such\/dir\/audit\.jsonl": ENOENT/);

  const run = await runCli(["--listen", "127.0.0.1:0", "--audit-log", "-", "--audit-reads", "off"]);
  const url = String((await run.waitForLog("listening")).url);
  const res = await fetch(`${url}/terraform/state/cli`, { method: "POST", body: state(1) });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  for (let i = 0; i < 500 && !run.stderr().includes('"surface":"http"'); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const record = run.logs().find((l) => (l as Record<string, unknown>).surface === "http") as
    | Record<string, unknown>
    | undefined;
  assert.deepEqual(
    [record?.method, record?.workspace, record?.result, record?.principal],
    ["POST /terraform/state/{workspace}", "cli", "ok", { method: "anonymous", name: "anonymous" }],
  );
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0);
});
