/**
 * The service builds its storage target once, from its Config, and hands it to the state core:
 * the Config's settings reach the storage layer without passing through the core's own names.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { backendConfig, storageTarget } from "../../src/config/backend-config.ts";
import type { Config } from "../../src/config/config.ts";
import { loadConfig } from "../../src/config/load.ts";
import { UnauthenticatedError } from "../../src/errors.ts";
import { noopLogger } from "../../src/log.ts";
import { createBackend } from "../../src/oras/index.ts";
import { startRegistry } from "../harness/registry.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

function configFrom(argv: string[]): Config {
  const loaded = loadConfig(argv, {}, { readFile: () => "" });
  assert.equal(loaded.kind, "config");
  return loaded.config;
}

function coreOn(config: Config) {
  const target = storageTarget(config, noopLogger, "oci-tfstate/test");
  return { target, backend: createBackend(backendConfig(config, target, noopLogger)) };
}

describe("the storage target built from the Config", () => {
  test("oci-layout:DIR is a layout directory, used by the core with the Config's own settings", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-target-"));
    after(() => rm(dir, { recursive: true, force: true }));
    const { target, backend } = coreOn(
      configFrom(["--repository", `oci-layout:${dir}`, "--max-versions", "2"]),
    );
    assert.equal(target.kind, "layout");
    assert.equal(backend.target, target, "the core works on the target it was handed");
    const mgr = backend.stateMgr("default");
    for (const n of [1, 2, 3]) await mgr.put(text(`state ${n}`));
    await backend.waitForRetention();
    assert.deepEqual(
      (await mgr.listVersions()).map((v) => v.version),
      [2, 3],
      "--max-versions reached the core",
    );
    await backend.close();
    const index = JSON.parse(await readFile(path.join(dir, "index.json"), "utf8")) as {
      manifests: { annotations?: Record<string, string> }[];
    };
    const tags = index.manifests.map((m) => m.annotations?.["org.opencontainers.image.ref.name"]);
    assert.ok(tags.includes("state-default"), JSON.stringify(tags));
  });

  test("a registry repository is reached with the Config's credentials", async () => {
    const registry = await startRegistry({ auth: { kind: "basic", users: { ci: "s3cret" } } });
    after(() => registry.stop());
    const base = ["--repository", `${registry.host}/team/state`, "--plain-http", "--registry-username", "ci"];

    const good = coreOn(configFrom([...base, "--registry-password", "s3cret"]));
    assert.equal(good.target.kind, "remote");
    assert.equal(good.target.location, `${registry.host}/team/state`);
    await good.backend.stateMgr("default").put(text("with credentials"));
    assert.equal(str((await good.backend.stateMgr("default").get())?.data), "with credentials");
    await good.backend.close();

    const bad = coreOn(configFrom([...base, "--registry-password", "wrong", "--retry-max-attempts", "1"]));
    await assert.rejects(bad.backend.stateMgr("default").get(), UnauthenticatedError);
    await bad.backend.close();
  });
});
