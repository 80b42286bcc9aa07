/**
 * The identity settings: --tokens-file, --oidc-issuer with --oidc-audience, --oidc-config, each
 * with its OCI_TFSTATE_* variable, checked together, in --help; and the authenticator's settings
 * built from them (none at all: everyone stays anonymous).
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { IdentityFileError } from "../../src/auth/config-file.ts";
import type { Config } from "../../src/config/config.ts";
import { helpText } from "../../src/config/help.ts";
import { identityOptions } from "../../src/config/identity-config.ts";
import { ConfigError, loadConfig } from "../../src/config/load.ts";
import { noopLogger } from "../../src/log.ts";
import { tempDir } from "./cli-process.ts";

function load(argv: string[], env: Record<string, string> = {}): Config {
  const r = loadConfig(argv, env);
  assert.equal(r.kind, "config");
  return r.config;
}

function fails(argv: string[], env: Record<string, string>, message: string): void {
  assert.throws(
    () => loadConfig(argv, env),
    (err) => err instanceof ConfigError && err.message === message,
  );
}

test("no identity settings by default", () => {
  const c = load([]);
  assert.equal(c.tokensFile, undefined);
  assert.equal(c.oidc, undefined);
  assert.equal(c.oidcConfigFile, undefined);
});

test("flags and their OCI_TFSTATE_* variables", () => {
  const flags = load([
    "--tokens-file",
    "/etc/t.yaml",
    "--oidc-issuer",
    "https://token.actions.githubusercontent.com",
    "--oidc-audience",
    "oci-tfstate",
  ]);
  assert.equal(flags.tokensFile, "/etc/t.yaml");
  assert.deepEqual(flags.oidc, {
    issuer: "https://token.actions.githubusercontent.com",
    audience: "oci-tfstate",
  });
  const env = load([], {
    OCI_TFSTATE_TOKENS_FILE: "/run/t.json",
    OCI_TFSTATE_OIDC_CONFIG: "/etc/issuers.yaml",
  });
  assert.equal(env.tokensFile, "/run/t.json");
  assert.equal(env.oidcConfigFile, "/etc/issuers.yaml");
  assert.deepEqual(
    load([], { OCI_TFSTATE_OIDC_ISSUER: "https://gitlab.com", OCI_TFSTATE_OIDC_AUDIENCE: "tfstate" }).oidc,
    { issuer: "https://gitlab.com", audience: "tfstate" },
  );
});

test("an issuer needs its audience, the audience its issuer, and the flags are not mixed with the file", () => {
  fails(
    ["--oidc-issuer", "https://gitlab.com"],
    {},
    "--oidc-issuer needs --oidc-audience (the aud its tokens must carry, e.g. oci-tfstate)",
  );
  fails([], { OCI_TFSTATE_OIDC_AUDIENCE: "x" }, "--oidc-audience needs --oidc-issuer");
  fails(
    ["--oidc-issuer", "https://gitlab.com", "--oidc-audience", "x", "--oidc-config", "/f.yaml"],
    {},
    "give --oidc-issuer or --oidc-config, not both (list every issuer in the file)",
  );
  fails(
    ["--oidc-issuer", "http://idp.example.com", "--oidc-audience", "x"],
    {},
    'invalid --oidc-issuer "http://idp.example.com": an issuer URL must be https (plain http only on a loopback host)',
  );
  fails(["--tokens-file", " "], {}, 'invalid --tokens-file " ": must not be empty');
});

test("--help lists the identity flags, their variables and the token command", () => {
  const help = helpText();
  for (const flag of [
    "--tokens-file FILE",
    "--oidc-issuer URL",
    "--oidc-audience AUD",
    "--oidc-config FILE",
  ]) {
    assert.ok(help.includes(flag), flag);
  }
  for (const env of [
    "OCI_TFSTATE_TOKENS_FILE",
    "OCI_TFSTATE_OIDC_ISSUER",
    "OCI_TFSTATE_OIDC_AUDIENCE",
    "OCI_TFSTATE_OIDC_CONFIG",
  ]) {
    assert.ok(help.includes(env), env);
  }
  assert.match(help, /token create NAME \[--description TEXT\]/);
});

test("the authenticator's settings: none without identity; the issuer from flags, or the issuers file read", async () => {
  assert.equal(await identityOptions(load([]), noopLogger), undefined);
  const fromFlags = await identityOptions(
    load(["--tokens-file", "/t.yaml", "--oidc-issuer", "https://gitlab.com", "--oidc-audience", "tf"]),
    noopLogger,
  );
  assert.deepEqual(fromFlags?.tokens, { file: "/t.yaml" });
  assert.equal(fromFlags?.oidc?.issuers[0]?.issuer, "https://gitlab.com");
  assert.deepEqual(fromFlags?.oidc?.issuers[0]?.audiences, ["tf"]);
  assert.equal(fromFlags?.oidc?.issuers[0]?.clockToleranceMs, 30_000);

  const dir = await tempDir();
  const file = path.join(dir, "issuers.yaml");
  await writeFile(file, "issuers:\n  - issuer: https://gitlab.example.com\n    audience: tf\n");
  const fromFile = await identityOptions(load(["--oidc-config", file]), noopLogger);
  assert.equal(fromFile?.tokens, undefined);
  assert.equal(fromFile?.oidc?.issuers[0]?.issuer, "https://gitlab.example.com");
  await writeFile(file, "issuers:\n  - issuer: https://gitlab.example.com\n");
  await assert.rejects(
    identityOptions(load(["--oidc-config", file]), noopLogger),
    (err) =>
      err instanceof IdentityFileError &&
      err.message.endsWith(
        "issuers[0].audience (line 2): is required (the `aud` the service accepts, e.g. oci-tfstate)",
      ),
  );
});
