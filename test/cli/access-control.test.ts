/**
 * Identity, policy and audit together in the real process (--tokens-file, --policy-file,
 * --audit-log): strangers get 401 with each protocol's challenge; each token does what its grants
 * say on both surfaces and nothing more; a workspace it may not see does not exist for it; every
 * change and every refusal is in the audit log as the caller it was; SIGHUP applies a new policy
 * to the next call and keeps the old one when the new file is broken.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { sha256 } from "../../src/auth/token-set.ts";
import { StateService } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import { PROTOCOLS, transport } from "../rpc/fixture.ts";
import { type CliRun, runCli, tempDir } from "./cli-process.ts";

const NAMES = ["admin", "ci", "viewer", "outsider"] as const;
type Name = (typeof NAMES)[number];
const SECRETS = Object.fromEntries(
  NAMES.map((n) => [n, `otfs_${randomBytes(32).toString("base64url")}`]),
) as Record<Name, string>;

const POLICY = (viewerPermissions: string) => `
rules:
  - principals: [{ token: admin }]
    workspaces: ["*"]
    permissions: [admin]
  - principals: [{ token: ci }]
    workspaces: ["team-*"]
    permissions: [read, write, lock]
  - principals: [{ token: viewer }]
    workspaces: [team-a]
    permissions: [${viewerPermissions}]
`;

interface Served {
  run: CliRun;
  url: string;
  policyFile: string;
  auditFile: string;
}

async function serve(): Promise<Served> {
  const dir = await tempDir();
  const tokensFile = path.join(dir, "tokens.yaml");
  const policyFile = path.join(dir, "policy.yaml");
  const auditFile = path.join(dir, "audit.jsonl");
  const entries = NAMES.map(
    (n) => `  - name: ${n}\n    sha256: ${sha256(SECRETS[n]).toString("hex")}\n`,
  ).join("");
  await writeFile(tokensFile, `tokens:\n${entries}`);
  await writeFile(policyFile, POLICY("read"));
  const run = await runCli(
    [
      "--listen",
      "127.0.0.1:0",
      "--repository",
      `oci-layout:${path.join(dir, "data")}`,
      "--tokens-file",
      tokensFile,
      "--policy-file",
      policyFile,
      "--audit-log",
      auditFile,
    ],
    {},
    dir,
  );
  const listening = await run.waitForLog("listening", 30_000);
  return { run, url: String(listening.url), policyFile, auditFile };
}

const bearer = (n: Name) => ({ authorization: `Bearer ${SECRETS[n]}` });
const basic = (n: Name) => ({
  authorization: `Basic ${Buffer.from(`ci-job:${SECRETS[n]}`).toString("base64")}`,
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}

async function auditRecords(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(file, "utf8");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const STATE = (serial: number) =>
  JSON.stringify({ version: 4, serial, lineage: "l", outputs: {}, resources: [] });

test("tokens, policy and audit log together, on every protocol and the http backend", async () => {
  const { run, url, policyFile, auditFile } = await serve();
  const statePath = (ws: string) => `${url}/terraform/state/${ws}`;

  // Strangers: 401 with the protocol's own challenge.
  for (const protocol of PROTOCOLS) {
    const ws = createClient(WorkspaceService, transport(protocol, url));
    let challenge: string | null = null;
    try {
      await ws.listWorkspaces({});
      assert.fail(`${protocol}: a stranger listed workspaces`);
    } catch (err) {
      const e = ConnectError.from(err);
      assert.equal(e.code, Code.Unauthenticated, protocol);
      challenge = e.metadata.get("www-authenticate");
    }
    assert.equal(challenge, 'Bearer realm="oci-tfstate"', protocol);
  }
  const stranger = await fetch(statePath("team-a"));
  assert.equal(stranger.status, 401);
  assert.match(stranger.headers.get("www-authenticate") ?? "", /^Basic realm="oci-tfstate".*Bearer realm/);
  assert.equal(await stranger.text().then((t) => t.includes("state")), false, "no state for a stranger");

  // The admin makes the workspaces; the CI token writes one over the http backend (Basic).
  const admin = createClient(WorkspaceService, transport("grpc over h2c", url));
  for (const name of ["team-a", "team-b", "ops"])
    await admin.createWorkspace({ name }, { headers: bearer("admin") });
  const written = await fetch(statePath("team-a"), { method: "POST", headers: basic("ci"), body: STATE(1) });
  assert.equal(written.status, 200, await written.text());

  // The viewer reads team-a on both surfaces and may not write it on either; the 403 names the
  // permission and the workspace.
  const viewerRead = await fetch(statePath("team-a"), { headers: basic("viewer") });
  assert.equal(viewerRead.status, 200);
  assert.equal(JSON.parse(await viewerRead.text()).serial, 1);
  const viewerWrite = await fetch(statePath("team-a"), {
    method: "POST",
    headers: basic("viewer"),
    body: STATE(2),
  });
  assert.equal(viewerWrite.status, 403);
  assert.match(
    JSON.parse(await viewerWrite.text()).error,
    /viewer lacks the write permission on workspace "team-a"/,
  );
  const state = createClient(StateService, transport("connect+json over HTTP/1.1", url));
  const got = await state.getState({ workspace: "team-a" }, { headers: bearer("viewer") });
  assert.equal(JSON.parse(Buffer.from(got.state).toString()).serial, 1);
  try {
    await state.putState(
      { workspace: "team-a", state: new TextEncoder().encode(STATE(2)) },
      { headers: bearer("viewer") },
    );
    assert.fail("the viewer wrote a state");
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(e.code, Code.PermissionDenied);
    assert.match(e.rawMessage, /write permission on workspace "team-a"/);
  }
  // The viewer's write changed nothing.
  const after = await fetch(statePath("team-a"), { headers: basic("ci") });
  assert.equal(JSON.parse(await after.text()).serial, 1);

  // What a caller may not see does not exist for it: team-b and ops for the viewer, all for the
  // outsider, whether they exist or not.
  assert.equal((await fetch(statePath("team-b"), { headers: basic("viewer") })).status, 404);
  assert.equal((await fetch(statePath("no-such"), { headers: basic("viewer") })).status, 404);
  assert.equal(await code(state.getState({ workspace: "ops" }, { headers: bearer("viewer") })), "NotFound");
  assert.equal(
    await code(state.getState({ workspace: "team-a" }, { headers: bearer("outsider") })),
    "NotFound",
  );
  const seen = async (n: Name) =>
    (await admin.listWorkspaces({}, { headers: bearer(n) })).workspaces.map((w) => w.name).sort();
  assert.deepEqual(await seen("viewer"), ["team-a"]);
  assert.deepEqual(await seen("outsider"), []);
  assert.deepEqual(await seen("ci"), ["team-a", "team-b"]);
  assert.ok((await seen("admin")).includes("ops"));
  // Only admin creates or deletes workspaces.
  assert.equal(
    await code(admin.createWorkspace({ name: "team-c" }, { headers: bearer("ci") })),
    "PermissionDenied",
  );
  assert.equal(
    await code(admin.deleteWorkspace({ name: "team-b" }, { headers: bearer("ci") })),
    "PermissionDenied",
  );

  // SIGHUP: the viewer gets write on team-a, from the next call on.
  await writeFile(policyFile, POLICY("read, write"));
  run.child.kill("SIGHUP");
  await run.waitForLog("policy file reloaded", 15_000);
  const nowWrites = await fetch(statePath("team-a"), {
    method: "POST",
    headers: basic("viewer"),
    body: STATE(2),
  });
  assert.equal(nowWrites.status, 200, await nowWrites.text());
  // A broken policy file keeps the policy in force.
  await writeFile(
    policyFile,
    "rules:\n  - principals: [{ token: viewer }]\n    workspaces: [team-a]\n    permissions: [everything]\n",
  );
  run.child.kill("SIGHUP");
  await run.waitForLog("policy file not reloaded: the previous policy stays in force", 15_000);
  const stillWrites = await fetch(statePath("team-a"), {
    method: "POST",
    headers: basic("viewer"),
    body: STATE(3),
  });
  assert.equal(stillWrites.status, 200);
  assert.equal(run.child.exitCode, null, "SIGHUP never ends the process");

  // The audit log: each change and each refusal, as the caller it was; never a secret or state.
  // Records are appended asynchronously: wait for the last one (the second write after the reload).
  let records = await auditRecords(auditFile);
  const viewerWrites = () =>
    records.filter(
      (r) =>
        r.method === "POST /terraform/state/{workspace}" &&
        r.result === "ok" &&
        (r.principal as { name?: string }).name === "viewer",
    ).length;
  for (const deadline = Date.now() + 5000; viewerWrites() < 2 && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 20));
    records = await auditRecords(auditFile);
  }
  const find = (pred: (r: Record<string, unknown>) => boolean, what: string) => {
    const r = records.find(pred);
    assert.ok(r, `an audit record for ${what}:\n${records.map((x) => JSON.stringify(x)).join("\n")}`);
    return r;
  };
  const who = (r: Record<string, unknown>) => (r.principal as { name?: string }).name;
  const httpWrite = find(
    (r) => r.surface === "http" && r.method === "POST /terraform/state/{workspace}" && who(r) === "ci",
    "the CI token's write",
  );
  assert.equal(httpWrite.result, "ok");
  assert.equal(httpWrite.workspace, "team-a");
  assert.match(String(httpWrite.digest), /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(httpWrite.principal, { method: "token", name: "ci", token: "ci" });
  find(
    (r) =>
      r.surface === "http" &&
      who(r) === "viewer" &&
      r.method === "POST /terraform/state/{workspace}" &&
      r.result === "permission_denied",
    "the viewer's refused http write",
  );
  find(
    (r) =>
      r.surface === "rpc" &&
      who(r) === "viewer" &&
      r.method === "tfstate.v1.StateService/PutState" &&
      r.workspace === "team-a" &&
      r.result === "permission_denied",
    "the viewer's refused PutState",
  );
  find(
    (r) =>
      r.surface === "rpc" && who(r) === "admin" && r.method === "tfstate.v1.WorkspaceService/CreateWorkspace",
    "the admin's CreateWorkspace",
  );
  find(
    (r) => r.surface === "rpc" && r.method === "tfstate.v1.StateService/GetState" && who(r) === "viewer",
    "the viewer's read",
  );
  const okWrites = records.filter(
    (r) => r.method === "POST /terraform/state/{workspace}" && r.result === "ok" && who(r) === "viewer",
  );
  assert.equal(okWrites.length, 2, "both writes after the reload");
  const text = await readFile(auditFile, "utf8");
  for (const secret of Object.values(SECRETS)) assert.equal(text.includes(secret), false, "no secret");
  assert.equal(text.includes('"serial"'), false, "no state content");
  assert.equal(run.stderr().includes(SECRETS.viewer), false, "no secret in the server log");

  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0);
});
