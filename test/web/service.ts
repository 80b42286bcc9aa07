/**
 * What the dashboard tests share: one registry for the test file, the service started as its CLI
 * (`node src/cli.ts`, as `npm start` runs it) on it, screenshots (into docs/screenshots/, the
 * README's, with OCI_TFSTATE_SCREENSHOTS=docs, else into a temp dir so a run leaves the tree as it
 * was), and the checks every page must pass (no CSP violation, no uncaught error, no request beyond
 * the server's origin).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after } from "node:test";
import { type CliRun, runCli, tempDir } from "../cli/cli-process.ts";
import { type RegistryHandle, startRegistry } from "../harness/registry.ts";
import { closeClients } from "../tfhttp/tofu-client.ts";
import { cspViolations, type Watched } from "./browser.ts";

const SHOTS =
  process.env.OCI_TFSTATE_SCREENSHOTS === "docs"
    ? path.resolve("docs/screenshots")
    : await mkdtemp(path.join(tmpdir(), "oci-tfstate-shots-"));

// Started at import (the test file's top level): node:test runs an `after` registered inside a
// hook when that hook ends.
export const registry: RegistryHandle = await startRegistry();
await mkdir(SHOTS, { recursive: true });
after(async () => {
  if (process.env.OCI_TFSTATE_SCREENSHOTS !== "docs") await rm(SHOTS, { recursive: true, force: true });
  closeClients();
  await registry.stop();
});

/** The service on a fresh repository of the registry, stopped when the test file ends. */
export async function serve(args: string[] = []): Promise<{ run: CliRun; url: string; dir: string }> {
  const dir = await tempDir();
  const run = await runCli(
    [
      "--listen",
      "127.0.0.1:0",
      "--repository",
      `${registry.host}/tfstate/dash-${randomBytes(4).toString("hex")}`,
      "--plain-http",
      "--watch-poll-interval",
      "500ms",
      ...args,
    ],
    {},
    dir,
  );
  const listening = await run.waitForLog("listening", 30_000);
  after(async () => {
    run.child.kill("SIGTERM");
    await run.exited;
  });
  return { run, url: String(listening.url), dir };
}

export async function shot(w: Watched, name: string) {
  await w.page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

export function clean(w: Watched) {
  assert.deepEqual(cspViolations(w.errors), [], "no Content-Security-Policy violation");
  assert.deepEqual(
    w.errors.filter((e) => e.startsWith("page error")),
    [],
    "no uncaught error",
  );
  assert.deepEqual(w.foreign, [], "no request beyond the server's origin");
}
