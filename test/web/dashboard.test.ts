/**
 * The dashboard in a real Chromium against the real service process (`node src/cli.ts`, as `npm
 * start` runs it) on a real registry: workspaces written over the Terraform http backend are
 * listed; a lock taken by an http LOCK shows on the open pages within 1 s without a reload and goes
 * on UNLOCK (pushed by WatchLock); Force unlock on the page releases a lock an http client holds;
 * with --tokens-file the page asks for a token, says plainly when one is refused, and a token
 * without force-unlock gets the button disabled up front with the permission named. Every page
 * runs under the served Content-Security-Policy with no violation and no request beyond the
 * server's origin.
 * The tests take screenshots of the main screens: into docs/screenshots/ (the README's) with
 * OCI_TFSTATE_SCREENSHOTS=docs, else into a temp dir, so a test run leaves the tree as it was.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { before, describe, test } from "node:test";
import { sha256 } from "../../src/auth/token-set.ts";
import { tempDir } from "../cli/cli-process.ts";
import { newLockInfo, rawRequest, stateDoc, TofuHttpClient } from "../tfhttp/tofu-client.ts";
import { openPage } from "./browser.ts";
import { clean, serve, shot } from "./service.ts";

/** The dashboard's promise: a pushed lock change is on screen within this. */
const LIVE_MS = 1000;

/** Writes a state over the http backend, as `tofu apply` does (LOCK, POST ?ID=, UNLOCK). */
async function apply(url: string, workspace: string, serial: number, password?: string) {
  const tofu = new TofuHttpClient({
    address: `${url}/terraform/state/${workspace}`,
    ...(password ? { username: "ci", password } : {}),
  });
  const info = newLockInfo("OperationTypeApply", "ci@runner");
  assert.equal((await tofu.lock(info)).status, 200);
  const resources = [
    {
      mode: "managed",
      type: "null_resource",
      name: "a",
      provider: 'provider["registry.opentofu.org/hashicorp/null"]',
      instances: [],
    },
  ];
  assert.equal((await tofu.put(stateDoc(serial, "3f2a1c9e-lineage", resources))).status, 200);
  assert.equal((await tofu.unlock(info.ID)).status, 200);
}

const anonymous = await serve(["--max-versions", "5"]);
const fresh = await serve();
const secret = {
  admin: `otfs_${randomBytes(32).toString("base64url")}`,
  viewer: `otfs_${randomBytes(32).toString("base64url")}`,
};
const identity = await serveWithIdentity();

describe("dashboard, anonymous on loopback (npm start's default)", () => {
  const { url } = anonymous;
  before(async () => {
    await apply(url, "app-prod", 3);
    await apply(url, "app-staging", 1);
    await apply(url, "network", 7);
  });

  test("/ is served under a strict CSP and lists the workspaces written over the http backend", async () => {
    const w = await openPage(url);
    const res = await w.page.goto(`${url}/`);
    assert.ok(res);
    assert.equal(res.status(), 200);
    const csp = res.headers()["content-security-policy"] ?? "";
    for (const d of [
      "default-src 'self'",
      "script-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
    ]) {
      assert.ok(csp.includes(d), `CSP ${JSON.stringify(csp)} has ${d}`);
    }
    assert.ok(!csp.includes("unsafe-inline"));
    const rows = w.page.locator("table.workspaces tbody tr");
    await rows.filter({ hasText: "network" }).waitFor({ timeout: 15_000 });
    const names = await w.page.locator("tbody tr td:first-child a").allTextContents();
    assert.deepEqual(names, ["app-prod", "app-staging", "default", "network"]);
    const prod = w.page.locator('tr[data-workspace="app-prod"]');
    assert.match((await prod.textContent()) ?? "", /unlocked/);
    assert.match((await prod.textContent()) ?? "", /B|KiB/);
    await w.page.locator(".live", { hasText: "live" }).waitFor({ timeout: 10_000 });

    await w.page.getByLabel("Filter by name").fill("app");
    assert.deepEqual(await w.page.locator("tbody tr td:first-child a").allTextContents(), [
      "app-prod",
      "app-staging",
    ]);
    await w.page.getByLabel("Filter by name").fill("");
    await w.page.getByLabel("Sort by").selectOption("updated");
    const byTime = await w.page.locator("tbody tr td:first-child a").allTextContents();
    assert.deepEqual(byTime, ["network", "app-staging", "app-prod", "default"], "newest write first");
    await w.page.getByLabel("Sort by").selectOption("name");
    await shot(w, "workspaces");
    clean(w);
    await w.context.close();
  });

  test("a lock taken by an http LOCK shows on the open list and page within 1 s, and goes on UNLOCK", async (t) => {
    const list = await openPage(url);
    await list.page.goto(`${url}/`);
    await list.page.locator(".live", { hasText: "live" }).waitFor({ timeout: 15_000 });
    const page = await openPage(url);
    await page.page.goto(`${url}/#/w/app-staging`);
    await page.page.locator(".live", { hasText: "live" }).waitFor({ timeout: 15_000 });
    await page.page.getByText("Nobody holds the lock").waitFor({ timeout: 10_000 });

    const tofu = new TofuHttpClient({ address: `${url}/terraform/state/app-staging` });
    const info = { ...newLockInfo("OperationTypeApply", "alice@laptop"), Info: "tofu apply -target=x" };
    assert.equal((await tofu.lock(info)).status, 200);
    const locked = Date.now();
    await Promise.all([
      list.page
        .locator('tr[data-workspace="app-staging"] .badge.locked', { hasText: "alice@laptop" })
        .waitFor({ timeout: LIVE_MS }),
      page.page
        .locator("#lock-title .badge.locked", { hasText: "alice@laptop" })
        .waitFor({ timeout: LIVE_MS }),
    ]);
    const shownAfter = Date.now() - locked;
    // The lease comes from GetLock, asked when the change arrives.
    await page.page.getByTestId("lock-fields").getByText("never (no lease)").waitFor({ timeout: 5_000 });
    const fields = (await page.page.getByTestId("lock-fields").textContent()) ?? "";
    for (const v of [
      info.ID,
      "OperationTypeApply",
      "alice@laptop",
      "1.12.6",
      "tofu apply -target=x",
      "state-app-staging",
    ]) {
      assert.ok(fields.includes(v), `the lock panel shows ${v}:\n${fields}`);
    }
    assert.match(fields, /Lease ends\s*never \(no lease\)/);
    await shot(page, "workspace-locked");
    await shot(list, "workspaces-locked");

    assert.equal((await tofu.unlock(info.ID)).status, 200);
    await Promise.all([
      list.page.locator('tr[data-workspace="app-staging"] .badge.free').waitFor({ timeout: LIVE_MS }),
      page.page.getByText("Nobody holds the lock").waitFor({ timeout: LIVE_MS }),
    ]);
    assert.ok(shownAfter < LIVE_MS, `shown ${shownAfter} ms after the LOCK answered`);
    t.diagnostic(`the lock was on both pages ${shownAfter} ms after the LOCK answered`);
    clean(list);
    clean(page);
    await list.context.close();
    await page.context.close();
  });

  test("Force unlock, after a confirmation naming the holder, releases a lock an http client holds", async () => {
    const tofu = new TofuHttpClient({ address: `${url}/terraform/state/network` });
    const info = newLockInfo("OperationTypePlan", "bob@ci-runner-7");
    assert.equal((await tofu.lock(info)).status, 200);

    const w = await openPage(url);
    await w.page.goto(`${url}/#/w/network`);
    await w.page
      .locator("#lock-title .badge.locked", { hasText: "bob@ci-runner-7" })
      .waitFor({ timeout: 15_000 });
    // Keyboard: the button is reachable and opens the confirmation.
    const button = w.page.getByRole("button", { name: "Force unlock" });
    await button.focus();
    await w.page.keyboard.press("Enter");
    const dialog = w.page.getByRole("dialog");
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? "", /bob@ci-runner-7/);
    assert.match((await dialog.textContent()) ?? "", /OperationTypePlan/);
    await shot(w, "force-unlock-confirm");
    await dialog.getByRole("button", { name: "Force unlock" }).click();
    await w.page.getByText("Nobody holds the lock").waitFor({ timeout: 5_000 });

    // The service agrees: the lock is gone, and the holder's fenced write is refused.
    const lock = await rawRequest(
      `${url}/tfstate.v1.StateService/GetLock`,
      "POST",
      JSON.stringify({ workspace: "network" }),
    );
    assert.equal(JSON.parse(lock.text).state, "LOCK_STATE_UNLOCKED");
    clean(w);
    await w.context.close();
  });

  test("a workspace that does not exist is said so in words, not a blank page or an endless retry", async () => {
    const w = await openPage(url);
    await w.page.goto(`${url}/#/w/no-such-workspace`);
    const alert = w.page.getByRole("alert").first();
    await alert.waitFor({ timeout: 15_000 });
    assert.match((await alert.textContent()) ?? "", /Not found: .*no-such-workspace/);
    assert.equal(await w.page.getByText("reconnecting").count(), 0);
    assert.equal(await w.page.getByRole("button", { name: "Force unlock" }).count(), 0);
    await w.context.close();
  });

  test("works at 360 px (no sideways scrolling) and on a 4K screen", async () => {
    for (const [name, viewport] of [
      ["workspaces-360px", { width: 360, height: 740 }],
      ["workspaces-4k", { width: 3840, height: 2160 }],
    ] as const) {
      const w = await openPage(url, viewport);
      await w.page.goto(`${url}/`);
      await w.page.locator('tr[data-workspace="app-prod"]').waitFor({ timeout: 15_000 });
      const wide = (await w.page.evaluate("document.documentElement.scrollWidth")) as number;
      assert.ok(wide <= viewport.width, `${name}: page is ${wide} px wide in a ${viewport.width} px window`);
      assert.ok(await w.page.locator('tr[data-workspace="app-prod"] a').isVisible());
      if (name === "workspaces-360px") await shot(w, name);
      clean(w);
      await w.context.close();
    }
  });

  test("a new server shows the backend configuration to start with, for a name the user types", async () => {
    const w = await openPage(fresh.url);
    await w.page.goto(`${fresh.url}/`);
    await w.page.getByRole("heading", { name: "Store a new workspace here" }).waitFor({ timeout: 15_000 });
    await w.page.getByLabel("Workspace name").fill("team-a");
    const snippet = (await w.page.locator("pre.snippet").textContent()) ?? "";
    assert.ok(snippet.includes(`address        = "${fresh.url}/terraform/state/team-a"`), snippet);
    assert.ok(snippet.includes(`lock_address   = "${fresh.url}/terraform/state/team-a/lock"`), snippet);
    await shot(w, "empty-state");
    clean(w);
    await w.context.close();
  });
});

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
  await writeFile(
    policy,
    [
      "rules:",
      "  - principals: [{ token: admin }]",
      '    workspaces: ["*"]',
      "    permissions: [admin]",
      "  - principals: [{ token: viewer }]",
      '    workspaces: ["*"]',
      "    permissions: [read, lock]",
      "",
    ].join("\n"),
  );
  return serve(["--tokens-file", tokens, "--policy-file", policy, "--lock-ttl", "10m"]);
}

test("more workspaces than a page come a page of ListWorkspaces at a time; the filter covers what is loaded", async () => {
  const many = await serve();
  const names = Array.from({ length: 130 }, (_, i) => `svc-${String(i).padStart(3, "0")}`);
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(
      names.slice(i, i + 10).map(async (name) => {
        const res = await fetch(`${many.url}/tfstate.v1.WorkspaceService/CreateWorkspace`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name }),
        });
        assert.equal(res.status, 200, await res.text());
      }),
    );
  }
  const w = await openPage(many.url);
  await w.page.goto(`${many.url}/`);
  const rows = w.page.locator("tbody tr");
  await rows.first().waitFor({ timeout: 15_000 });
  assert.equal(await rows.count(), 100, "the first page");
  await w.page.getByText("100 workspaces loaded; more on the server.").waitFor();
  await w.page.getByLabel("Filter by name").fill("svc-12");
  assert.equal(await rows.count(), 0, "svc-120… are on the next page");
  await w.page.getByRole("button", { name: "Load 100 more" }).click();
  await w.page.locator('tr[data-workspace="svc-129"]').waitFor({ timeout: 15_000 });
  assert.deepEqual(
    await w.page.locator("tbody tr td:first-child a").allTextContents(),
    names.filter((n) => n.startsWith("svc-12")),
  );
  await w.page.getByLabel("Filter by name").fill("");
  assert.equal(await rows.count(), 131, "130 and default");
  assert.equal(await w.page.getByRole("button", { name: "Load 100 more" }).count(), 0, "the last page");
  clean(w);
  await w.context.close();
});

describe("dashboard with identity on (--tokens-file, --policy-file)", () => {
  const { url } = identity;
  before(() => apply(url, "team-a", 2, secret.admin));

  test("without a token the page says sign-in is needed; a wrong token is refused in words; a good one lists", async () => {
    const w = await openPage(url);
    await w.page.goto(`${url}/`);
    await w.page.getByText("The server needs an API token").waitFor({ timeout: 15_000 });
    await w.page.getByRole("link", { name: "Sign in with an API token" }).click();
    const field = w.page.getByLabel("API token");
    assert.equal(await field.getAttribute("type"), "password");
    await field.fill(`otfs_${randomBytes(32).toString("base64url")}`);
    await w.page.getByRole("button", { name: "Sign in" }).click();
    await w.page.getByText("The server did not accept this token (401").waitFor({ timeout: 10_000 });
    await shot(w, "sign-in-refused");
    await field.fill(secret.viewer);
    await w.page.getByRole("button", { name: "Sign in" }).click();
    await w.page.locator('tr[data-workspace="team-a"]').waitFor({ timeout: 15_000 });
    // Kept for this tab only: in sessionStorage, nowhere else.
    // A string: this file is typed for Node, the expression runs in the page.
    const stored = await w.page.evaluate(
      `({ session: sessionStorage.getItem("oci-tfstate.token"), local: localStorage.length, cookies: document.cookie })`,
    );
    assert.deepEqual(stored, { session: secret.viewer, local: 0, cookies: "" });
    assert.ok(!w.page.url().includes(secret.viewer));
    clean(w);
    await w.context.close();
  });

  test("a token without force-unlock sees Force unlock disabled, naming the missing permission", async () => {
    const tofu = new TofuHttpClient({
      address: `${url}/terraform/state/team-a`,
      username: "ci",
      password: secret.admin,
    });
    const info = newLockInfo("OperationTypeApply", "deploy@ci");
    assert.equal((await tofu.lock(info)).status, 200);

    const w = await openPage(url);
    await w.page.goto(`${url}/#/sign-in`);
    await w.page.getByLabel("API token").fill(secret.viewer);
    await w.page.getByRole("button", { name: "Sign in" }).click();
    await w.page.locator('tr[data-workspace="team-a"]').waitFor({ timeout: 15_000 });
    await w.page.goto(`${url}/#/w/team-a`);
    await w.page.locator("#lock-title .badge.locked", { hasText: "deploy@ci" }).waitFor({ timeout: 15_000 });
    // With --lock-ttl the panel shows when the holder's lease ends.
    await w.page
      .getByTestId("lock-fields")
      .getByText(/\(in (9|10) min\)/)
      .waitFor({ timeout: 5_000 });
    // Disabled from the first render, the permission named: Workspace.caller_permissions.
    const button = w.page.getByRole("button", { name: "Force unlock" });
    await w.page.locator("#force-denied").waitFor({ timeout: 10_000 });
    assert.ok(await button.isDisabled());
    assert.equal(await button.getAttribute("aria-describedby"), "force-denied");
    assert.equal(await w.page.locator("#force-denied").textContent(), "needs the force-unlock permission");
    await shot(w, "force-unlock-denied");
    // Still locked by its holder.
    const lock = await rawRequest(
      `${url}/tfstate.v1.StateService/GetLock`,
      "POST",
      JSON.stringify({ workspace: "team-a" }),
      { authorization: `Bearer ${secret.admin}` },
    );
    assert.equal(JSON.parse(lock.text).lock.who, "deploy@ci");
    assert.equal((await tofu.unlock(info.ID)).status, 200);
    clean(w);
    await w.context.close();
  });
});
