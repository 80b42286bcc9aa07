/** --http-lock-wait: how long an http backend LOCK on a held lock waits in line before its 423. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/load.ts";

function httpLockWait(argv: string[], env: Record<string, string> = {}): number {
  const r = loadConfig(argv, env);
  assert.equal(r.kind, "config");
  return r.kind === "config" ? r.config.httpLockWaitMs : Number.NaN;
}

test("--http-lock-wait defaults to 5s, takes a duration or 0, and its variable", () => {
  assert.equal(httpLockWait([]), 5000);
  assert.equal(httpLockWait(["--http-lock-wait", "2500ms"]), 2500);
  assert.equal(httpLockWait(["--http-lock-wait=0"]), 0);
  assert.equal(httpLockWait([], { OCI_TFSTATE_HTTP_LOCK_WAIT: "10s" }), 10_000);
});

test("--http-lock-wait past 30s or without a unit is one clear line", () => {
  for (const [value, message] of [
    ["31s", /^invalid --http-lock-wait "31s": must be at most 30s/],
    ["5", /^invalid --http-lock-wait "5": expected a duration with a unit/],
  ] as const) {
    assert.throws(
      () => loadConfig(["--http-lock-wait", value], {}),
      (err: unknown) =>
        err instanceof ConfigError && message.test(err.message) && !err.message.includes("\n"),
    );
  }
});
