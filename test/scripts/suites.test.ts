/**
 * scripts/lib/suites.sh, the runner behind scripts/test-clients.sh and scripts/test-packages.sh: a
 * suite fails when any of its commands fails, not only its last one, even when the runner itself
 * is called as a condition, and every suite runs whatever failed before it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { test } from "node:test";

const SUITES_SH = path.resolve("scripts/lib/suites.sh");

const FAKE_SUITES = `
set -euo pipefail
source "$1"
shift
test_early() { echo early-start; false; echo early-went-on; }
test_pipeline() { false | cat; echo pipeline-went-on; }
test_nested() { step() { false; echo nested-went-on; }; step; }
test_passes() { echo passes-ran; }
# Called as a condition on purpose: errexit must still hold inside each suite.
if run_suites fake "$@"; then echo "runner: passed"; else echo "runner: failed"; exit 1; fi
`;

function run(...suites: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("bash", ["-c", FAKE_SUITES, "fake-suites", SUITES_SH, ...suites], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
    });
  });
}

test("a command failing before a suite's last one fails the suite, and later suites still run", async () => {
  const r = await run("early", "pipeline", "nested", "passes");
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /early-start/);
  for (const went of ["early-went-on", "pipeline-went-on", "nested-went-on"]) {
    assert.doesNotMatch(r.stdout, new RegExp(went), `the suite stopped at its failing command (${went})`);
  }
  assert.match(r.stdout, /passes-ran/);
  assert.match(r.stdout, /== passes fake: passed/);
  assert.match(r.stderr, /== early fake: FAILED \(exit 1\)/);
  assert.match(r.stderr, /fake suites failed: early pipeline nested\n/);
  assert.match(r.stdout, /runner: failed/);
});

test("suites that all pass make the runner succeed", async () => {
  const r = await run("passes", "passes");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /runner: passed/);
});
