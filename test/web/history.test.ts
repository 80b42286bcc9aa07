/**
 * The dashboard's state screens in a real Chromium against the real service process and a real
 * registry, with states written by a real `tofu apply` (OpenTofu, terraform_data resources, a local
 * module, a plain and a sensitive output): the list shows their resource and version counts; the
 * workspace page shows serial, lineage and tool version, the resources grouped by module and type,
 * the outputs with the sensitive one masked (its value never reaches the page), and downloads the
 * raw state byte for byte; the diff of the two applies names the changed resource with its changed
 * paths and the changed output; Restore from the page, after a confirmation and refused in words
 * while someone holds the lock, makes the old content current as `tofu state pull` sees it; a
 * read-only token never sees Restore enabled (Workspace.caller_permissions names `admin` up front);
 * an outputs-only token reads outputs and is told download, history and diff need `read`; an
 * encrypted and an opaque state (written with the http backend client) show as such, with history,
 * download and restore still offered.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { before, describe, test } from "node:test";
import { sha256 } from "../../src/auth/token-set.ts";
import { tempDir } from "../cli/cli-process.ts";
import { newLockInfo, TofuHttpClient } from "../tfhttp/tofu-client.ts";
import { openPage, type Watched } from "./browser.ts";
import { clean, serve, shot } from "./service.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TOFU = execFileSync("bash", [path.join(ROOT, "scripts/install-tofu.sh"), "--path"], {
  encoding: "utf8",
}).trim();
assert.ok(existsSync(TOFU), `OpenTofu is not installed at ${TOFU}: run scripts/install-tofu.sh`);

const secret = {
  admin: `otfs_${randomBytes(32).toString("base64url")}`,
  viewer: `otfs_${randomBytes(32).toString("base64url")}`,
  outputs: `otfs_${randomBytes(32).toString("base64url")}`,
  ops: `otfs_${randomBytes(32).toString("base64url")}`,
};

/** The policy; `ops` holds `opsPermissions` (changed by a SIGHUP reload in one test). */
const policyText = (opsPermissions: string) =>
  [
    "rules:",
    "  - principals: [{ token: admin }]",
    '    workspaces: ["*"]',
    "    permissions: [admin]",
    "  - principals: [{ token: viewer }]",
    '    workspaces: ["*"]',
    "    permissions: [read, lock]",
    "  - principals: [{ token: outputs }]",
    '    workspaces: ["*"]',
    "    permissions: [read-outputs]",
    "  - principals: [{ token: ops }]",
    '    workspaces: ["*"]',
    `    permissions: [${opsPermissions}]`,
    "",
  ].join("\n");

async function serveWithIdentity() {
  const dir = await tempDir();
  const tokens = path.join(dir, "tokens.yaml");
  const policy = path.join(dir, "policy.yaml");
  await writeFile(
    tokens,
    `tokens:\n${Object.entries(secret)
      .map(([n, s]) => `  - name: ${n}\n    sha256: ${sha256(s).toString("hex")}\n`)
      .join("")}`,
  );
  await writeFile(policy, policyText("admin"));
  return {
    policy,
    ...(await serve(["--tokens-file", tokens, "--policy-file", policy, "--max-versions", "10"])),
  };
}

const { url, run, policy } = await serveWithIdentity();

/** Rewrites the policy file and has the server read it again (SIGHUP), as an operator does. */
async function reloadPolicy(text: string) {
  const reloaded = () => run.logs().filter((l) => l.msg === "policy file reloaded").length;
  const before = reloaded();
  await writeFile(policy, text);
  run.child.kill("SIGHUP");
  const deadline = Date.now() + 10_000;
  while (reloaded() === before) {
    assert.ok(Date.now() < deadline, "the server logged no policy reload");
    await new Promise((r) => setTimeout(r, 50));
  }
}
const WS = "infra";
const address = `${url}/terraform/state/${WS}`;
const CONFIG = `
terraform {
  backend "http" {
    address        = "${address}"
    lock_address   = "${address}/lock"
    unlock_address = "${address}/lock"
  }
}
variable "release" {
  type = string
}
resource "terraform_data" "release" {
  input = var.release
}
module "net" {
  source = "./net"
  name   = "net-\${var.release}"
}
output "release" {
  value = terraform_data.release.output
}
output "db_password" {
  value     = "hunter2-\${var.release}"
  sensitive = true
}
`;
const NET = `
variable "name" {
  type = string
}
resource "terraform_data" "subnet" {
  input = var.name
}
`;

/** One CI job's working directory; tofu authenticates with the admin token. */
async function tofuJob() {
  const cwd = await mkdtemp(path.join(await tempDir(), "job-"));
  await mkdir(path.join(cwd, "net"));
  await writeFile(path.join(cwd, "main.tf"), CONFIG);
  await writeFile(path.join(cwd, "net", "main.tf"), NET);
  await writeFile(path.join(cwd, "empty.tfrc"), "");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: cwd,
    TF_CLI_CONFIG_FILE: path.join(cwd, "empty.tfrc"),
    CHECKPOINT_DISABLE: "1",
    TF_IN_AUTOMATION: "1",
    TF_INPUT: "0",
    TF_HTTP_USERNAME: "ci",
    TF_HTTP_PASSWORD: secret.admin,
  };
  return (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(TOFU, [...args, "-no-color"], { cwd, env, timeout: 120_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`tofu ${args.join(" ")} failed:\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
}

interface PulledState {
  serial: number;
  lineage: string;
  terraform_version: string;
  outputs: Record<string, { value: unknown }>;
}

/** The stored state's bytes, as the http backend serves them. */
async function storedBytes(workspace: string): Promise<Buffer> {
  const res = await fetch(`${url}/terraform/state/${workspace}`, {
    headers: { authorization: `Basic ${Buffer.from(`ci:${secret.admin}`).toString("base64")}` },
  });
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

async function signedIn(token: string, hash = "#/"): Promise<Watched> {
  const w = await openPage(url);
  await w.page.goto(`${url}/#/sign-in`);
  await w.page.getByLabel("API token").fill(token);
  await w.page.getByRole("button", { name: "Sign in" }).click();
  await w.page.locator("table.workspaces").waitFor({ timeout: 15_000 });
  if (hash !== "#/") await w.page.goto(`${url}/${hash}`);
  return w;
}

/** Writes a state over the http backend as one CLI run does (LOCK, POST ?ID=, UNLOCK). */
async function write(workspace: string, body: string) {
  const client = new TofuHttpClient({
    address: `${url}/terraform/state/${workspace}`,
    username: "ci",
    password: secret.admin,
  });
  const info = newLockInfo("OperationTypeApply", "ci@runner");
  assert.equal((await client.lock(info)).status, 200);
  assert.equal((await client.put(body)).status, 200);
  assert.equal((await client.unlock(info.ID)).status, 200);
}

const tofu = await tofuJob();
let first: PulledState;
let second: PulledState;

describe("the state screens, on states written by tofu apply", () => {
  before(async () => {
    await tofu(["init", "-input=false"]);
    await tofu(["apply", "-auto-approve", "-input=false", "-var=release=v1"]);
    first = JSON.parse(await tofu(["state", "pull"])) as PulledState;
    await tofu(["apply", "-auto-approve", "-input=false", "-var=release=v2"]);
    second = JSON.parse(await tofu(["state", "pull"])) as PulledState;
    assert.ok(second.serial > first.serial);
  });

  test("the list shows the workspace tofu wrote with its serial, resource count and version count", async () => {
    const w = await signedIn(secret.admin);
    const row = w.page.locator(`tr[data-workspace="${WS}"]`);
    await row
      .getByTestId("version-count")
      .getByText(/^2 · current v\d+$/)
      .waitFor({ timeout: 15_000 });
    assert.equal(await row.getByTestId("resource-count").textContent(), "2");
    assert.match(
      (await row.locator('td[data-label="Last update"]').textContent()) ?? "",
      new RegExp(`· serial ${second.serial}$`),
    );
    await shot(w, "workspaces-counts");
    clean(w);
    await w.context.close();
  });

  test("the workspace page: header, resources by module and type, outputs masked, raw state download", async () => {
    const w = await signedIn(secret.admin, `#/w/${WS}`);
    const facts = w.page.getByTestId("state-facts");
    await facts.getByText(second.lineage).waitFor({ timeout: 15_000 });
    const text = (await facts.textContent()) ?? "";
    assert.match(text, new RegExp(`Serial${second.serial}Lineage`));
    assert.ok(text.includes(`Tool version${second.terraform_version}`), text);
    assert.match(text, /Updated.*UTC/);

    const resources = w.page.getByTestId("resources");
    await resources.waitFor({ timeout: 10_000 });
    assert.deepEqual(await resources.locator("h3").allTextContents(), ["root module", "module.net"]);
    assert.equal(
      await resources
        .getByRole("region", { name: "module.net" })
        .locator("tr[data-resource]")
        .getAttribute("data-resource"),
      "module.net.terraform_data.subnet",
    );
    assert.equal(
      await resources.getByRole("region", { name: "root module" }).locator("td").first().textContent(),
      "terraform_data",
    );
    await shot(w, "workspace-resources");

    await w.page.getByRole("link", { name: "Outputs" }).click();
    const release = w.page.locator('[data-testid="outputs"] tr[data-output="release"]');
    await release.waitFor({ timeout: 10_000 });
    assert.match((await release.textContent()) ?? "", /"v2"/);
    assert.match((await w.page.locator('tr[data-output="db_password"]').textContent()) ?? "", /sensitive/);
    assert.ok(!(await w.page.content()).includes("hunter2"), "the sensitive value never reaches the page");
    await shot(w, "workspace-outputs");

    const [download] = await Promise.all([
      w.page.waitForEvent("download"),
      w.page.getByRole("button", { name: "Download state" }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `${WS}.tfstate`);
    const file = await download.path();
    assert.deepEqual(
      await readFile(file),
      await storedBytes(WS),
      "the download is the stored state, byte for byte",
    );
    clean(w);
    await w.context.close();
  });

  test("Versions and the diff of the two applies: serial a → b, the changed resources with paths, the changed outputs", async () => {
    const w = await signedIn(secret.admin, `#/w/${WS}/versions`);
    const rows = w.page.locator("table.versions tbody tr");
    await rows.nth(1).waitFor({ timeout: 15_000 });
    assert.equal(await rows.count(), 2);
    const [newest, oldest] = [rows.nth(0), rows.nth(1)];
    await newest.locator(".badge.current").waitFor();
    assert.equal(await oldest.locator(".badge.current").count(), 0);
    assert.equal(
      await newest.getByRole("button", { name: "Restore" }).count(),
      0,
      "the current one is not offered",
    );
    // The serial per row comes from each version's summary.
    await oldest.getByRole("cell", { name: String(first.serial), exact: true }).waitFor({ timeout: 10_000 });
    await newest.getByRole("cell", { name: String(second.serial), exact: true }).waitFor({ timeout: 10_000 });
    await shot(w, "versions");

    // View: that version's own summary, not the current one's.
    await oldest.getByRole("link", { name: "View" }).click();
    await w.page.getByRole("heading", { name: /^Version \d+$/ }).waitFor({ timeout: 10_000 });
    const facts = w.page.locator("#version-title ~ [data-testid=state-facts]");
    await facts.waitFor({ timeout: 10_000 });
    assert.match(
      (await facts.textContent()) ?? "",
      new RegExp(`^Serial${first.serial}Lineage${first.lineage}`),
    );
    const viewed = w.page.locator('[data-testid="outputs"] tr[data-output="release"]');
    assert.match((await viewed.textContent()) ?? "", /"v1"/);
    await shot(w, "version");
    await w.page.goBack();

    await oldest.getByRole("link", { name: "Diff with current" }).click();
    await w.page
      .getByRole("heading", { name: `Serial ${first.serial} → ${second.serial}` })
      .waitFor({ timeout: 10_000 });
    const changes = w.page.getByTestId("resource-changes");
    const release = changes.locator('li[data-address="terraform_data.release"]');
    assert.match((await release.locator(".kind").first().textContent()) ?? "", /changed/);
    const paths = await release.locator(".paths code").allTextContents();
    // terraform_data keeps `input` as a dynamic value: {value, type}.
    assert.ok(paths.includes("attributes.input.value"), `changed paths ${paths.join(", ")}`);
    await changes.locator('li[data-address="module.net.terraform_data.subnet"]').waitFor();
    const out = w.page.locator('[data-testid="output-changes"] tr[data-output="release"]');
    assert.match((await out.textContent()) ?? "", /changed"v1""v2"/);
    const secretOut = w.page.locator('[data-testid="output-changes"] tr[data-output="db_password"]');
    assert.match((await secretOut.textContent()) ?? "", /sensitive.*sensitive/);
    assert.ok(!(await w.page.content()).includes("hunter2"));
    await shot(w, "diff");

    // Any two: the picker, both ways round.
    await w.page.goto(`${url}/#/w/${WS}/versions`);
    await w.page.getByRole("button", { name: "Show diff" }).click();
    await w.page
      .getByRole("heading", { name: `Serial ${first.serial} → ${second.serial}` })
      .waitFor({ timeout: 10_000 });
    clean(w);
    await w.context.close();
  });

  test("Restore: refused in words while someone holds the lock; after a confirmation, tofu state pull sees the old content", async () => {
    const w = await signedIn(secret.admin, `#/w/${WS}/versions`);
    const oldest = w.page.locator("table.versions tbody tr").nth(1);
    await oldest.waitFor({ timeout: 15_000 });
    const version = await oldest.getAttribute("data-version");
    assert.ok(version);
    const restore = oldest.getByRole("button", { name: "Restore" });
    await restore.waitFor();
    assert.ok(await restore.isEnabled());

    const holder = new TofuHttpClient({ address, username: "ci", password: secret.admin });
    const info = newLockInfo("OperationTypeApply", "carol@ci");
    assert.equal((await holder.lock(info)).status, 200);
    const reason = w.page.locator(`#restore-${version}-reason`);
    await reason.waitFor({ timeout: 5_000 });
    assert.equal(await reason.textContent(), "refused while carol@ci holds the lock (OperationTypeApply)");
    assert.ok(await restore.isDisabled());
    assert.equal((await holder.unlock(info.ID)).status, 200);
    await w.page.waitForFunction(
      `!document.querySelector('[data-action="restore-${version}"]').disabled`,
      undefined,
      { timeout: 5_000 },
    );

    await restore.click();
    const dialog = w.page.getByRole("dialog");
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? "", new RegExp(`Restore v${version} of “${WS}”`));
    await shot(w, "restore-confirm");
    await dialog.getByRole("button", { name: `Restore v${version}` }).click();
    await w.page
      .getByRole("status")
      .getByText(`v${version}'s content is now current`)
      .waitFor({ timeout: 10_000 });

    const pulled = JSON.parse(await tofu(["state", "pull"])) as PulledState;
    assert.equal(pulled.outputs.release?.value, "v1", "the old content is current");
    assert.equal(pulled.lineage, first.lineage);
    // Written as a new version: three now, the new one current.
    const rows = w.page.locator("table.versions tbody tr");
    await rows.nth(2).waitFor({ timeout: 10_000 });
    await rows.nth(0).locator(".badge.current").waitFor();
    clean(w);
    await w.context.close();
  });

  test("a read-only token (read, lock) never sees Restore enabled: it needs admin, said up front", async () => {
    const w = await signedIn(secret.viewer, `#/w/${WS}/versions`);
    const rows = w.page.locator("table.versions tbody tr");
    await rows.nth(2).waitFor({ timeout: 15_000 });
    // From the first render on: Workspace.caller_permissions says what the caller may do.
    const restores = w.page.locator("table.versions").getByRole("button", { name: "Restore" });
    assert.equal(await restores.count(), 2, "every version but the current one");
    for (const b of await restores.all()) {
      assert.ok(await b.isDisabled());
      const why = await b.getAttribute("aria-describedby");
      assert.equal(await w.page.locator(`#${why}`).textContent(), "needs the admin permission");
    }
    // Reading is allowed: download and diff stay offered.
    assert.ok(
      await rows
        .nth(1)
        .getByRole("button", { name: /^Download v/ })
        .isEnabled(),
    );
    assert.equal(await rows.nth(1).getByRole("link", { name: "Diff with current" }).count(), 1);
    await shot(w, "restore-denied");
    clean(w);
    await w.context.close();
  });

  test("the versions, version and diff screens fit 360 px (no sideways scrolling)", async () => {
    const w = await openPage(url, { width: 360, height: 740 });
    await w.page.goto(`${url}/#/sign-in`);
    await w.page.getByLabel("API token").fill(secret.admin);
    await w.page.getByRole("button", { name: "Sign in" }).click();
    await w.page.locator("table.workspaces").waitFor({ timeout: 15_000 });
    for (const [hash, ready] of [
      [`#/w/${WS}/versions`, "table.versions tbody tr"],
      [`#/w/${WS}/versions/1`, "[data-testid=outputs]"],
      [`#/w/${WS}/diff/1/0`, "[data-testid=diff-counts]"],
      [`#/w/${WS}`, "[data-testid=resources]"],
    ] as const) {
      await w.page.goto(`${url}/${hash}`);
      await w.page.locator(ready).first().waitFor({ timeout: 15_000 });
      const wide = (await w.page.evaluate("document.documentElement.scrollWidth")) as number;
      assert.ok(wide <= 360, `${hash}: page is ${wide} px wide in a 360 px window`);
      if (hash.endsWith("/versions")) await shot(w, "versions-360px");
    }
    clean(w);
    await w.context.close();
  });

  test("a grant taken away after the page loaded: the server's 403 disables every Restore, in its words", async () => {
    const before = await storedBytes(WS);
    const w = await signedIn(secret.ops, `#/w/${WS}/versions`);
    const rows = w.page.locator("table.versions tbody tr");
    await rows.nth(2).waitFor({ timeout: 15_000 });
    const restores = w.page.locator("table.versions").getByRole("button", { name: "Restore" });
    for (const b of await restores.all()) assert.ok(await b.isEnabled(), "ops has admin when the page loads");
    await reloadPolicy(policyText("read, lock"));
    try {
      const version = await rows.nth(2).getAttribute("data-version");
      await rows.nth(2).getByRole("button", { name: "Restore" }).click();
      await w.page
        .getByRole("dialog")
        .getByRole("button", { name: `Restore v${version}` })
        .click();
      const reason = w.page.locator(`#restore-${version}-reason`);
      await reason.waitFor({ timeout: 10_000 });
      assert.match((await reason.textContent()) ?? "", /^Not allowed \(403\): .*admin/);
      // Every version's Restore, not only the one tried.
      for (const b of await restores.all()) assert.ok(await b.isDisabled());
      assert.deepEqual(await storedBytes(WS), before, "nothing was restored");
    } finally {
      await reloadPolicy(policyText("admin"));
    }
    clean(w);
    await w.context.close();
  });

  test("an outputs-only token (read-outputs) reads outputs; download and history say they need read", async () => {
    const w = await signedIn(secret.outputs, `#/w/${WS}/outputs`);
    const release = w.page.locator('[data-testid="outputs"] tr[data-output="release"]');
    await release.waitFor({ timeout: 15_000 });
    assert.match((await release.textContent()) ?? "", /"v1"/);
    const download = w.page.getByRole("button", { name: "Download state" });
    assert.ok(await download.isDisabled());
    assert.equal(await w.page.locator("#download-current-reason").textContent(), "needs the read permission");
    await w.page.getByRole("link", { name: "Versions" }).click();
    await w.page
      .getByText("The history is not shown: needs the read permission.")
      .waitFor({ timeout: 5_000 });
    await w.page.goto(`${url}/#/w/${WS}/diff/1/0`);
    await w.page.getByText("The diff is not shown: needs the read permission.").waitFor({ timeout: 5_000 });
    clean(w);
    await w.context.close();
  });
});

describe("states that are not Terraform JSON", () => {
  const envelope = (serial: number) =>
    JSON.stringify({
      serial,
      lineage: "6c1e2f0a-sealed",
      meta: { "key_provider.pbkdf2.main": "eyJzYWx0IjoiLi4uIn0=" },
      encrypted_data: randomBytes(96).toString("base64"),
      encryption_version: "v0",
    });
  before(async () => {
    await write("sealed", envelope(1));
    await write("sealed", envelope(2));
    await write("blob", "not json at all\n");
  });

  test("an encrypted state shows as encrypted; history, diff refusal, download and restore still work", async () => {
    const w = await signedIn(secret.admin);
    await w.page
      .locator('tr[data-workspace="sealed"] [data-testid="resource-count"]', { hasText: "encrypted" })
      .waitFor({ timeout: 15_000 });
    assert.equal(
      await w.page.locator('tr[data-workspace="blob"] [data-testid="resource-count"]').textContent(),
      "not Terraform JSON",
    );
    await w.page.goto(`${url}/#/w/sealed`);
    await w.page
      .getByTestId("format-note")
      .first()
      .getByText("This state is encrypted")
      .waitFor({ timeout: 15_000 });
    const facts = (await w.page.getByTestId("state-facts").textContent()) ?? "";
    assert.match(facts, /Serial2Lineage6c1e2f0a-sealed/);
    assert.match(facts, /Formatencrypted \(OpenTofu\)/);
    await shot(w, "workspace-encrypted");
    assert.ok(await w.page.getByRole("button", { name: "Download state" }).isEnabled());

    await w.page.getByRole("link", { name: "Versions" }).click();
    const rows = w.page.locator("table.versions tbody tr");
    await rows.nth(1).waitFor({ timeout: 10_000 });
    await rows.nth(1).getByRole("link", { name: "Diff with current" }).click();
    await w.page.getByText("These versions cannot be compared").waitFor({ timeout: 10_000 });

    await w.page.goto(`${url}/#/w/sealed/versions`);
    const oldest = w.page.locator("table.versions tbody tr").nth(1);
    await oldest.waitFor({ timeout: 10_000 });
    const version = await oldest.getAttribute("data-version");
    const [download] = await Promise.all([
      w.page.waitForEvent("download"),
      oldest.getByRole("button", { name: `Download v${version}` }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `sealed-v${version}.tfstate`);
    assert.equal(JSON.parse(await readFile(await download.path(), "utf8")).serial, 1);
    await oldest.getByRole("button", { name: "Restore" }).click();
    await w.page
      .getByRole("dialog")
      .getByRole("button", { name: `Restore v${version}` })
      .click();
    await w.page.getByRole("status").getByText("is now current").waitFor({ timeout: 10_000 });
    assert.equal(JSON.parse((await storedBytes("sealed")).toString()).serial, 1);

    await w.page.goto(`${url}/#/w/blob`);
    await w.page
      .getByTestId("format-note")
      .first()
      .getByText("not Terraform state JSON")
      .waitFor({ timeout: 15_000 });
    await w.page.getByRole("link", { name: "Outputs" }).click();
    await w.page.getByTestId("format-note").nth(1).waitFor({ timeout: 10_000 });
    clean(w);
    await w.context.close();
  });
});
