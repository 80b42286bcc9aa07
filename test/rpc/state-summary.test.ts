/**
 * GetStateSummary, GetOutputs, DiffVersions and Workspace.summary on states written by the real
 * OpenTofu CLI through the http backend (terraform_data resources, for_each, a module with count,
 * a sensitive output, and OpenTofu's client-side state encryption), against a real registry, with
 * the policy in front: read-outputs reads summaries and outputs but not the state.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { UnauthenticatedError } from "../../src/errors.ts";
import {
  ChangeKind,
  DiffVersionsResponseSchema,
  GetOutputsResponseSchema,
  GetStateSummaryResponseSchema,
  StateService,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { StateFormat } from "../../src/gen/tfstate/v1/summary_pb.ts";
import { WorkspaceService } from "../../src/gen/tfstate/v1/workspace_service_pb.ts";
import type { Authenticator } from "../../src/http/server.ts";
import { noopLogger } from "../../src/log.ts";
import { Policy } from "../../src/policy/policy.ts";
import { createTerraformHttpRoute, policyAuthorizer } from "../../src/tfhttp/index.ts";
import { drain, rejectsWith, startRegistryFixture, str, text } from "./fixture.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TOFU = execFileSync("bash", [path.join(ROOT, "scripts/install-tofu.sh"), "--path"], {
  encoding: "utf8",
}).trim();

const SECRET = "s3cr3t-value-never-sent";
const PASSPHRASE = "correct-horse-battery-staple";

const MAIN = `
terraform {
  backend "http" {}
}
variable "greeting" { default = "hello" }
variable "keys" {
  type    = list(string)
  default = ["a", "b"]
}
variable "size" {
  type    = number
  default = 1
}
resource "terraform_data" "root" {
  input = var.greeting
}
resource "terraform_data" "each" {
  for_each = toset(var.keys)
  input    = each.key
}
module "net" {
  source = "./net"
  size   = var.size
}
output "greeting" {
  value = terraform_data.root.output
}
output "secret" {
  value     = "${SECRET}-\${var.greeting}"
  sensitive = true
}
output "subnets" {
  value = module.net.inputs
}
`;

const NET = `
variable "size" {
  type = number
}
resource "terraform_data" "subnet" {
  count = var.size
  input = { index = count.index, size = var.size }
}
output "inputs" {
  value = terraform_data.subnet[*].output
}
`;

const ENCRYPTED = `
terraform {
  backend "http" {}
  encryption {
    key_provider "pbkdf2" "k" {
      passphrase = "${PASSPHRASE}"
    }
    method "aes_gcm" "m" {
      keys = key_provider.pbkdf2.k
    }
    state {
      method = method.aes_gcm.m
    }
  }
}
variable "v" { default = "one" }
resource "terraform_data" "x" {
  input = var.v
}
output "v" {
  value = terraform_data.x.output
}
`;

/** `Bearer <name>`, or Basic with the name as password (the http backend's way). */
const byName: Authenticator = async (req) => {
  const header = req.headers.get("authorization") ?? "";
  const bearer = /^Bearer ([\w.-]+)$/.exec(header);
  const basic = /^Basic (.+)$/.exec(header);
  const name =
    bearer?.[1] ??
    (basic
      ? Buffer.from(basic[1] as string, "base64")
          .toString()
          .split(":")[1]
      : "");
  if (!name) throw new UnauthenticatedError("credentials required");
  return { method: "token", name, token: name };
};

const policy = Policy.fromRules([
  { principals: [{ kind: "token", name: "admin" }], workspaces: ["*"], permissions: ["admin"] },
  { principals: [{ kind: "token", name: "reader" }], workspaces: ["*"], permissions: ["read"] },
  { principals: [{ kind: "token", name: "outputs" }], workspaces: ["*"], permissions: ["read-outputs"] },
  { principals: [{ kind: "token", name: "locker" }], workspaces: ["*"], permissions: ["lock"] },
]);

const fx = await startRegistryFixture();
const served = await fx.serve({
  backend: { maxVersions: 10 },
  server: { authenticate: byName, policy },
  routes: (coordinator) => [
    createTerraformHttpRoute({
      coordinator,
      logger: noopLogger,
      maxStateSize: 1024 * 1024,
      authorize: policyAuthorizer(policy),
    }),
  ],
});
const transport = createConnectTransport({ baseUrl: served.url, httpVersion: "1.1" });
const state = createClient(StateService, transport);
const workspaces = createClient(WorkspaceService, transport);
const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

const kindName = (k: ChangeKind) =>
  ({ [ChangeKind.ADDED]: "ADDED", [ChangeKind.REMOVED]: "REMOVED", [ChangeKind.CHANGED]: "CHANGED" })[
    k as number
  ];

let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-summary-"));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A tofu working directory whose backend is workspace `ws` of the service. */
async function project(ws: string, files: Record<string, string>) {
  const cwd = path.join(dir, ws);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(cwd, name)), { recursive: true });
    await writeFile(path.join(cwd, name), content);
  }
  await writeFile(path.join(cwd, "empty.tfrc"), "");
  const env = {
    PATH: process.env.PATH,
    HOME: cwd,
    TF_CLI_CONFIG_FILE: path.join(cwd, "empty.tfrc"),
    CHECKPOINT_DISABLE: "1",
    TF_IN_AUTOMATION: "1",
    TF_INPUT: "0",
    TF_HTTP_RETRY_MAX: "0",
  };
  const run = (...args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(TOFU, [...args, "-no-color"], { cwd, env, timeout: 120_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`tofu ${args[0]} failed:\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
  const address = `${served.url}/terraform/state/${ws}`;
  await run(
    "init",
    "-input=false",
    `-backend-config=address=${address}`,
    `-backend-config=lock_address=${address}/lock`,
    `-backend-config=unlock_address=${address}/lock`,
    "-backend-config=username=tofu",
    "-backend-config=password=admin",
  );
  return { apply: (...vars: string[]) => run("apply", "-auto-approve", "-input=false", ...vars) };
}

/** The newest version number of `ws`. */
async function newestVersion(ws: string): Promise<bigint> {
  const { versions } = await state.listVersions({ workspace: ws }, as("reader"));
  const newest = versions[0]?.number;
  assert.ok(newest !== undefined, `${ws} has versions`);
  return newest;
}

describe("a Terraform JSON state written by tofu", () => {
  const ws = "plain";
  let v1: bigint;
  let v2: bigint;

  before(async () => {
    const p = await project(ws, { "main.tf": MAIN, "net/main.tf": NET });
    await p.apply();
    v1 = await newestVersion(ws);
    await p.apply("-var=greeting=bye", '-var=keys=["a","c"]', "-var=size=2");
    v2 = await newestVersion(ws);
    assert.ok(v2 > v1);
  });

  test("GetStateSummary: serial, lineage, tool version, counts by type and module, resources, outputs masked", async () => {
    const res = await state.getStateSummary({ workspace: ws }, as("outputs"));
    const s = res.summary;
    assert.ok(s);
    assert.equal(s.format, StateFormat.TERRAFORM_JSON);
    assert.equal(s.detail, "");
    assert.ok(s.serial > 0n);
    assert.match(s.lineage, /^[0-9a-f-]{36}$/);
    assert.match(s.terraformVersion, /^1\.\d+\.\d+/);
    assert.equal(s.stateVersion, 4);
    // root + each["a"], each["c"] + module.net subnet[0], subnet[1]
    assert.equal(s.resourceCount, 5n);
    assert.equal(s.dataSourceCount, 0n);
    assert.deepEqual(
      s.resourcesByType.map((c) => [c.key, c.count]),
      [["terraform_data", 5n]],
    );
    assert.deepEqual(
      s.resourcesByModule.map((c) => [c.key, c.count]),
      [
        ["", 3n],
        ["module.net", 2n],
      ],
    );
    assert.deepEqual(
      s.resources.map((r) => [r.address, r.mode, r.type, r.name, r.module, r.instanceCount]).sort(),
      [
        ["module.net.terraform_data.subnet", "managed", "terraform_data", "subnet", "module.net", 2n],
        ["terraform_data.each", "managed", "terraform_data", "each", "", 2n],
        ["terraform_data.root", "managed", "terraform_data", "root", "", 1n],
      ],
    );
    assert.ok(s.resources.every((r) => r.provider.includes("terraform")));
    assert.equal(s.outputCount, 3);
    assert.deepEqual(
      s.outputs.map((o) => [o.name, o.sensitive, o.typeJson, o.valueJson]),
      [
        ["greeting", false, '"string"', '"bye"'],
        ["secret", true, '"string"', ""],
        ["subnets", false, s.outputs[2]?.typeJson, s.outputs[2]?.valueJson],
      ],
    );
    assert.deepEqual(JSON.parse(s.outputs[2]?.valueJson ?? ""), [
      { index: 0, size: 2 },
      { index: 1, size: 2 },
    ]);
    assert.equal(res.metadata?.version, v2);
    assert.ok((res.metadata?.sizeBytes ?? 0n) > 0n);
    assert.ok(!toJsonString(GetStateSummaryResponseSchema, res).includes(SECRET));
  });

  test("GetStateSummary of an older version; GetOutputs of current and of a version, secrets masked", async () => {
    const old = await state.getStateSummary({ workspace: ws, version: v1 }, as("outputs"));
    assert.equal(old.metadata?.version, v1);
    assert.equal(old.summary?.resourceCount, 4n);
    assert.equal(old.summary?.outputs.find((o) => o.name === "greeting")?.valueJson, '"hello"');

    const current = await state.getOutputs({ workspace: ws }, as("outputs"));
    assert.equal(current.format, StateFormat.TERRAFORM_JSON);
    assert.equal(current.metadata?.version, v2);
    assert.ok(current.serial > 0n);
    assert.deepEqual(
      current.outputs.map((o) => o.name),
      ["greeting", "secret", "subnets"],
    );
    const secret = current.outputs.find((o) => o.name === "secret");
    assert.equal(secret?.sensitive, true);
    assert.equal(secret?.valueJson, "");
    const older = await state.getOutputs({ workspace: ws, version: v1 }, as("reader"));
    assert.equal(older.outputs.find((o) => o.name === "greeting")?.valueJson, '"hello"');
    for (const r of [current, older]) assert.ok(!toJsonString(GetOutputsResponseSchema, r).includes(SECRET));
  });

  test("DiffVersions: resources added, removed and changed with paths, outputs changed, both sides' serial and lineage", async () => {
    const d = await state.diffVersions({ workspace: ws, fromVersion: v1, toVersion: v2 }, as("reader"));
    assert.equal(d.from?.version, v1);
    assert.equal(d.to?.version, v2);
    assert.ok((d.to?.serial ?? 0n) > (d.from?.serial ?? 0n));
    assert.equal(d.from?.lineage, d.to?.lineage);
    assert.notEqual(d.from?.digest, d.to?.digest);
    const byAddress = new Map(d.resources.map((r) => [r.address, r]));
    assert.deepEqual(
      d.resources.map((r) => [r.address, kindName(r.kind)]),
      [
        ["module.net.terraform_data.subnet[0]", "CHANGED"],
        ["module.net.terraform_data.subnet[1]", "ADDED"],
        ['terraform_data.each["b"]', "REMOVED"],
        ['terraform_data.each["c"]', "ADDED"],
        ["terraform_data.root", "CHANGED"],
      ],
    );
    const root = byAddress.get("terraform_data.root");
    // terraform_data stores `input` and `output` as dynamic values: {value, type}.
    assert.deepEqual(root?.changedPaths, ["attributes.input.value", "attributes.output.value"]);
    const subnet = byAddress.get("module.net.terraform_data.subnet[0]");

    assert.ok(
      subnet?.changedPaths.some((p) => p.startsWith("attributes.input") && p.endsWith("size")),
      subnet?.changedPaths.join(),
    );
    assert.equal(d.pathsTruncated, false);
    assert.deepEqual(
      d.outputs.map((o) => [o.name, kindName(o.kind), o.from?.valueJson, o.to?.valueJson]),
      [
        ["greeting", "CHANGED", '"hello"', '"bye"'],
        ["secret", "CHANGED", "", ""],
        ["subnets", "CHANGED", d.outputs[2]?.from?.valueJson, d.outputs[2]?.to?.valueJson],
      ],
    );
    assert.ok(!toJsonString(DiffVersionsResponseSchema, d).includes(SECRET));
    const resourcesJson = JSON.stringify(d.resources, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    assert.ok(!/hello|bye/.test(resourcesJson), `no attribute values: ${resourcesJson}`);

    // Against the current state (to_version 0), and the other way round.
    const toCurrent = await state.diffVersions({ workspace: ws, fromVersion: v1 }, as("reader"));
    assert.deepEqual(toCurrent.resources, d.resources);
    assert.equal(toCurrent.to?.version, v2);
    const back = await state.diffVersions({ workspace: ws, fromVersion: v2, toVersion: v1 }, as("reader"));
    assert.deepEqual(
      back.resources.map((r) => [r.address, kindName(r.kind)]),
      [
        ["module.net.terraform_data.subnet[0]", "CHANGED"],
        ["module.net.terraform_data.subnet[1]", "REMOVED"],
        ['terraform_data.each["b"]', "ADDED"],
        ['terraform_data.each["c"]', "REMOVED"],
        ["terraform_data.root", "CHANGED"],
      ],
    );
    const same = await state.diffVersions({ workspace: ws, fromVersion: v2, toVersion: v2 }, as("reader"));
    assert.deepEqual([same.resources, same.outputs], [[], []]);
  });

  test("GetWorkspace and ListWorkspaces carry the key figures, never outputs or the resource list", async () => {
    const { workspace } = await workspaces.getWorkspace({ name: ws }, as("locker"));
    const s = workspace?.summary;
    assert.equal(s?.format, StateFormat.TERRAFORM_JSON);
    assert.equal(s?.resourceCount, 5n);
    assert.equal(s?.outputCount, 3);
    assert.deepEqual([s?.outputs, s?.resources], [[], []]);
    assert.equal(s?.resourcesByModule.length, 2);
    const listed = await workspaces.listWorkspaces({}, as("outputs"));
    const entry = listed.workspaces.find((w) => w.name === ws);
    assert.equal(entry?.summary?.resourceCount, 5n);
    assert.equal(entry?.summary?.serial, s?.serial);
    assert.deepEqual(entry?.summary?.outputs, []);
    // `default` has its empty state, which is not a Terraform state: no summary field is a crash.
    assert.ok(listed.workspaces.some((w) => w.name === "default"));
  });

  test("read-outputs reads summaries and outputs but not the state, its versions or a diff", async () => {
    await state.getStateSummary({ workspace: ws }, as("outputs"));
    await state.getOutputs({ workspace: ws, version: v1 }, as("outputs"));
    await rejectsWith(
      state.getState({ workspace: ws }, as("outputs")),
      Code.PermissionDenied,
      /lacks the read/,
    );
    await rejectsWith(
      state.getVersion({ workspace: ws, version: v1 }, as("outputs")),
      Code.PermissionDenied,
      /lacks the read/,
    );
    await rejectsWith(
      state.diffVersions({ workspace: ws, fromVersion: v1 }, as("outputs")),
      Code.PermissionDenied,
      /lacks the read permission/,
    );
    await rejectsWith(
      state.getOutputs({ workspace: ws }, as("locker")),
      Code.PermissionDenied,
      /lacks the read-outputs permission/,
    );
  });

  test("bad versions and missing states are clear errors", async () => {
    await rejectsWith(
      state.diffVersions({ workspace: ws, fromVersion: 0n }, as("reader")),
      Code.InvalidArgument,
      /from_version must be positive/,
    );
    await rejectsWith(
      state.getStateSummary({ workspace: ws, version: -1n }, as("reader")),
      Code.InvalidArgument,
      /version must not be negative/,
    );
    await rejectsWith(state.getOutputs({ workspace: ws, version: 999n }, as("reader")), Code.NotFound);
    await rejectsWith(state.diffVersions({ workspace: ws, fromVersion: 999n }, as("reader")), Code.NotFound);
    await workspaces.createWorkspace({ name: "empty" }, as("admin"));
    await rejectsWith(state.getStateSummary({ workspace: "empty" }, as("reader")), Code.NotFound, /no state/);
  });
});

describe("states that are not Terraform JSON", () => {
  test("an OpenTofu-encrypted state: summary says so with serial and lineage; diff refuses; history, download and restore work", async () => {
    const ws = "encrypted";
    const p = await project(ws, { "main.tf": ENCRYPTED });
    await p.apply();
    const v1 = await newestVersion(ws);
    await p.apply("-var=v=two");
    const v2 = await newestVersion(ws);
    const raw = JSON.parse(str((await state.getState({ workspace: ws }, as("reader"))).state)) as Record<
      string,
      unknown
    >;
    assert.ok("encrypted_data" in raw && "encryption_version" in raw, "tofu wrote an encrypted state");

    const { summary } = await state.getStateSummary({ workspace: ws }, as("outputs"));
    assert.equal(summary?.format, StateFormat.ENCRYPTED);
    assert.match(summary?.detail ?? "", /encrypted/);
    assert.equal(summary?.serial, BigInt(raw.serial as number));
    assert.equal(summary?.lineage, raw.lineage);
    assert.deepEqual([summary?.resourceCount, summary?.outputs, summary?.resources], [0n, [], []]);
    const outputs = await state.getOutputs({ workspace: ws }, as("outputs"));
    assert.equal(outputs.format, StateFormat.ENCRYPTED);
    assert.deepEqual(outputs.outputs, []);
    const listed = (await workspaces.listWorkspaces({}, as("reader"))).workspaces.find((w) => w.name === ws);
    assert.equal(listed?.summary?.format, StateFormat.ENCRYPTED);

    await rejectsWith(
      state.diffVersions({ workspace: ws, fromVersion: v1, toVersion: v2 }, as("reader")),
      Code.FailedPrecondition,
      /version \d+ of workspace "encrypted" cannot be compared: it is encrypted/,
    );
    const { messages, error } = await drain(
      state.downloadState({ workspace: ws, version: v1 }, as("reader")),
    );
    assert.equal(error, undefined);
    assert.ok(messages.length >= 3);
    await state.restoreVersion({ workspace: ws, version: v1 }, as("admin"));
    const restored = await state.getStateSummary({ workspace: ws }, as("reader"));
    assert.equal(restored.summary?.format, StateFormat.ENCRYPTED);
    assert.ok(restored.summary && restored.summary.serial < BigInt(raw.serial as number), "the older serial");
    assert.doesNotMatch(JSON.stringify(raw), new RegExp(PASSPHRASE));
  });

  test("an opaque payload and JSON of another shape: summaries say so, diffs refuse naming the side", async () => {
    const ws = "opaque";
    await state.putState({ workspace: ws, state: new Uint8Array([0xff, 0xfe, 0x00, 0x01]) }, as("admin"));
    const v1 = await newestVersion(ws);
    await state.putState({ workspace: ws, state: text('{"hello":"world"}') }, as("admin"));
    const v2 = await newestVersion(ws);
    const one = await state.getStateSummary({ workspace: ws, version: v1 }, as("reader"));
    assert.equal(one.summary?.format, StateFormat.OPAQUE);
    assert.equal(one.summary?.detail, "it is not JSON");
    const two = await state.getStateSummary({ workspace: ws }, as("reader"));
    assert.equal(two.summary?.format, StateFormat.OPAQUE);
    assert.match(two.summary?.detail ?? "", /not a Terraform state/);
    await rejectsWith(
      state.diffVersions({ workspace: ws, fromVersion: v1 }, as("reader")),
      Code.FailedPrecondition,
      new RegExp(`version ${v1} of workspace "opaque" cannot be compared: it is not JSON`),
    );
    await state.putState(
      { workspace: ws, state: text('{"version":4,"serial":3,"resources":[]}') },
      as("admin"),
    );
    await rejectsWith(
      state.diffVersions(
        { workspace: ws, fromVersion: await newestVersion(ws), toVersion: v2 },
        as("reader"),
      ),
      Code.FailedPrecondition,
      new RegExp(`version ${v2} of workspace "opaque" cannot be compared`),
    );
  });
});
