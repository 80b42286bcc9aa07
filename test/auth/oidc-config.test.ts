/**
 * The OIDC issuers file: every mistake names the entry, the field and its line; `none` and HS*
 * can never be allowed; plain http only for a loopback issuer; a JWKS file that cannot be used is
 * an error at start, naming it.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { IdentityFileError } from "../../src/auth/config-file.ts";
import { createOidcVerifier } from "../../src/auth/oidc.ts";
import { ASYMMETRIC_ALGORITHMS, loadOidcConfig, parseOidcConfig } from "../../src/auth/oidc-config.ts";
import { tempDir } from "../cli/cli-process.ts";
import { recordingLogger } from "./fixture.ts";

const FILE = "/etc/oci-tfstate/issuers.yaml";

function fails(text: string, message: RegExp): void {
  assert.throws(
    () => parseOidcConfig(text, FILE),
    (err) => {
      assert.ok(err instanceof IdentityFileError, String(err));
      assert.match(err.message, message);
      return true;
    },
  );
}

const entry = (extra: string[] = [], issuer = "https://token.actions.githubusercontent.com") =>
  [
    "issuers:",
    `  - issuer: ${issuer}`,
    "    audience: oci-tfstate",
    ...extra.map((l) => `    ${l}`),
    "",
  ].join("\n");

test("an issuer with defaults, and one with every field (relative jwks_file beside the file)", () => {
  const text = [
    "issuers:",
    "  - issuer: https://token.actions.githubusercontent.com",
    "    audience: oci-tfstate",
    "  - issuer: https://gitlab.example.com",
    "    audience: [oci-tfstate, https://tfstate.example.com]",
    "    jwks_file: keys/gitlab.json",
    "    algorithms: [RS256, ES256]",
    "    clock_tolerance: 5s",
    "",
  ].join("\n");
  assert.deepEqual(parseOidcConfig(text, FILE), [
    {
      issuer: "https://token.actions.githubusercontent.com",
      audiences: ["oci-tfstate"],
      jwksFile: undefined,
      algorithms: [...ASYMMETRIC_ALGORITHMS],
      clockToleranceMs: 30_000,
    },
    {
      issuer: "https://gitlab.example.com",
      audiences: ["oci-tfstate", "https://tfstate.example.com"],
      jwksFile: "/etc/oci-tfstate/keys/gitlab.json",
      algorithms: ["RS256", "ES256"],
      clockToleranceMs: 5000,
    },
  ]);
  assert.deepEqual(ASYMMETRIC_ALGORITHMS, [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
  ]);
});

test("each mistake names the entry, the field and its line", () => {
  fails(
    "issuers: []\n",
    /^\/etc\/oci-tfstate\/issuers\.yaml: issuers \(line 1\): expected a list of at least one issuer$/,
  );
  fails("issuers:\n  - audience: x\n", /issuers\[0\]\.issuer \(line 2\): is required$/);
  fails("issuers:\n  - issuer: https://a.example\n", /issuers\[0\]\.audience \(line 2\): is required/);
  fails(entry(["audience_: x"]), /issuers\[0\]\.audience_ \(line 4\): unknown field "audience_"/);
  fails(
    entry([], "http://idp.example.com"),
    /issuers\[0\]\.issuer \(line 2\): an issuer URL must be https \(plain http only on a loopback host\)$/,
  );
  fails(
    entry([], "https://idp.example.com/?x=1"),
    /issuers\[0\]\.issuer \(line 2\): an issuer URL has no query or fragment/,
  );
  fails(entry([], "not a url"), /issuers\[0\]\.issuer \(line 2\): expected an issuer URL/);
  fails(entry(["clock_tolerance: 10m"]), /issuers\[0\]\.clock_tolerance \(line 4\): must be at most 5m/);
  fails(entry(["clock_tolerance: 30"]), /issuers\[0\]\.clock_tolerance \(line 4\): expected a string/);
  fails(entry(["clock_tolerance: soon"]), /issuers\[0\]\.clock_tolerance \(line 4\): expected a duration/);
  fails(
    entry(["algorithms: [RS256, XX1]"]),
    /issuers\[0\]\.algorithms \(line 4\): unknown algorithm "XX1"; allowed: RS256, /,
  );
  fails(
    `${entry()}${entry().replace("issuers:\n", "")}`,
    /issuers\[1\]\.issuer \(line 4\): this issuer is already configured by issuers\[0\] \(line 2\)/,
  );
});

test("none and HS* can never be allowed", () => {
  for (const alg of ["none", "HS256", "hs512"]) {
    fails(
      entry([`algorithms: [${alg}]`]),
      new RegExp(`algorithms \\(line 4\\): ${alg} is never accepted \\(unsigned, or symmetric\\)`),
    );
  }
});

test("plain http is for a loopback issuer only", () => {
  for (const issuer of ["http://127.0.0.1:8999", "http://localhost:1234/realms/x", "http://[::1]:80"]) {
    assert.equal(parseOidcConfig(entry([], issuer), FILE)[0]?.issuer, issuer);
  }
});

test("a JWKS file that cannot be used, or an issuers file that cannot be read, is an error naming it", async () => {
  const dir = await tempDir();
  const { logger } = recordingLogger();
  const base = {
    issuer: "https://idp.example.com",
    audiences: ["a"],
    algorithms: ["RS256" as const],
    clockToleranceMs: 0,
  };
  const missing = path.join(dir, "missing.json");
  await assert.rejects(
    createOidcVerifier({ logger, issuers: [{ ...base, jwksFile: missing }] }),
    (err) =>
      err instanceof IdentityFileError &&
      err.message === `jwks_file ${missing} of issuer https://idp.example.com: ENOENT`,
  );
  const bad = path.join(dir, "bad.json");
  await writeFile(bad, JSON.stringify({ keys: "no" }));
  await assert.rejects(
    createOidcVerifier({ logger, issuers: [{ ...base, jwksFile: bad }] }),
    (err) =>
      err instanceof IdentityFileError &&
      /^jwks_file .*bad\.json of issuer https:\/\/idp\.example\.com: not a JWKS/.test(err.message),
  );
  await assert.rejects(
    loadOidcConfig(path.join(dir, "nope.yaml")),
    (err) =>
      err instanceof IdentityFileError &&
      /^cannot read the OIDC issuers file .*nope\.yaml: ENOENT$/.test(err.message),
  );
});
