/**
 * The tokens file: YAML or JSON, a name and a SHA-256 per token; every mistake names the entry,
 * the field and its line and never echoes a value. Matching hashes what was presented and compares
 * it in constant time with every entry, through crypto.timingSafeEqual on equal-length digests.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { syncBuiltinESMExports } from "node:module";
import { mock, test } from "node:test";
import { IdentityFileError } from "../../src/auth/config-file.ts";
import { parseTokensFile } from "../../src/auth/token-file.ts";
import { newSecret, sha256, TokenSet } from "../../src/auth/token-set.ts";

const hex = (secret: string) => sha256(secret).toString("hex");

function fails(text: string, message: RegExp | string): IdentityFileError {
  try {
    parseTokensFile(text, "/etc/oci-tfstate/tokens.yaml");
  } catch (err) {
    assert.ok(err instanceof IdentityFileError, String(err));
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return err;
  }
  return assert.fail(`expected ${String(message)}`);
}

test("YAML and JSON files give the same entries", () => {
  const yaml = [
    "tokens:",
    "  - name: ci-deploy",
    `    sha256: ${hex("a")}`,
    '    description: "deploy pipeline"',
    "  - name: reader.1",
    `    sha256: ${hex("b").toUpperCase()}`,
    "",
  ].join("\n");
  const json = JSON.stringify(
    {
      tokens: [
        { name: "ci-deploy", sha256: hex("a"), description: "deploy pipeline" },
        { name: "reader.1", sha256: hex("b") },
      ],
    },
    null,
    "\t",
  );
  for (const text of [yaml, json]) {
    const entries = parseTokensFile(text, "f");
    assert.deepEqual(
      entries.map((e) => [e.name, e.sha256.toString("hex"), e.description]),
      [
        ["ci-deploy", hex("a"), "deploy pipeline"],
        ["reader.1", hex("b"), undefined],
      ],
    );
  }
  assert.deepEqual(parseTokensFile("tokens: []\n", "f"), []);
});

test("each mistake names the file, the entry, the field and its line", () => {
  const file = "/etc/oci-tfstate/tokens.yaml";
  const good = `sha256: ${hex("a")}`;
  fails(
    "",
    `${file}: the document: the file is empty; expected a \`tokens:\` list (\`tokens: []\` for none)`,
  );
  fails("- a\n", `${file}: the document (line 1): expected a mapping with a \`tokens:\` list`);
  fails("tokens: {}\n", /^\/etc\/oci-tfstate\/tokens\.yaml: tokens \(line 1\): expected a list/);
  fails("token: []\n", /: token \(line 1\): unknown field "token" \(expected tokens\)$/);
  fails(
    `tokens:\n  - name: a\n    ${good}\n  - name: b\n    sha256: 12ab\n`,
    `${file}: tokens[1].sha256 (line 5): expected 64 hex digits (the SHA-256 of the secret)`,
  );
  fails(`tokens:\n  - ${good}\n`, `${file}: tokens[0].name (line 2): is required`);
  fails(
    `tokens:\n  - name: has space\n    ${good}\n`,
    /tokens\[0\]\.name \(line 2\): a token name is 1 to 64 of A-Z a-z 0-9 \. _ -$/,
  );
  fails(`tokens:\n  - name: ${"x".repeat(65)}\n    ${good}\n`, /tokens\[0\]\.name \(line 2\)/);
  fails(
    `tokens:\n  - name: 7\n    ${good}\n`,
    /tokens\[0\]\.name \(line 2\): expected a string, got a number/,
  );
  fails(
    `tokens:\n  - name: a\n    ${good}\n  - name: a\n    sha256: ${hex("b")}\n`,
    `${file}: tokens[1].name (line 4): the name a is already used by tokens[0] (line 2)`,
  );
  fails(
    `tokens:\n  - name: a\n    ${good}\n  - name: b\n    ${good}\n`,
    /tokens\[1\]\.sha256 \(line 5\): the same secret is already a's/,
  );
  fails(
    `tokens:\n  - name: a\n    ${good}\n    sha265: x\n`,
    /tokens\[0\]\.sha265 \(line 4\): unknown field "sha265" \(expected name, sha256, description\)/,
  );
  fails(
    `tokens:\n  - name: a\n    ${good}\n    description: 3\n`,
    /tokens\[0\]\.description \(line 4\): expected a string/,
  );
  fails("tokens: [\n", /^\/etc\/oci-tfstate\/tokens\.yaml: not valid YAML or JSON at line \d+, column \d+: /);
  fails(
    `tokens:\n  - name: a\n    name: b\n    ${good}\n`,
    /not valid YAML or JSON at line 3, column \d+: Map keys must be unique$/,
  );
});

test("a secret pasted into the file is refused without being echoed", () => {
  const secret = newSecret();
  const err = fails(
    `tokens:\n  - name: a\n    secret: ${secret}\n`,
    /tokens\[0\]\.secret \(line 3\): the file must not hold secrets, only their sha256/,
  );
  assert.ok(!err.message.includes(secret));
  const bad = fails(`tokens:\n  - name: a\n    sha256: ${secret}\n`, /expected 64 hex digits/);
  assert.ok(!bad.message.includes(secret));
});

test("a secret matches its own entry only; another secret, a prefix or a near miss matches none", () => {
  const a = newSecret();
  const b = newSecret();
  assert.match(a, /^otfs_[A-Za-z0-9_-]{43}$/);
  const set = new TokenSet(
    parseTokensFile(`tokens:\n  - name: a\n    sha256: ${hex(a)}\n  - name: b\n    sha256: ${hex(b)}\n`, "f"),
  );
  assert.deepEqual(set.match(a), { method: "token", name: "a", token: "a" });
  assert.deepEqual(set.match(b), { method: "token", name: "b", token: "b" });
  assert.equal(set.match(a.slice(0, -1)), undefined);
  assert.equal(set.match(`${a}x`), undefined);
  assert.equal(set.match(hex(a)), undefined, "the hash itself is not the secret");
  assert.equal(set.match(""), undefined);
  assert.ok(Object.isFrozen(set.match(a)));
});

test("matching compares with crypto.timingSafeEqual, 32-byte digests, every entry, however early the match", (t) => {
  const secrets = Array.from({ length: 5 }, () => newSecret());
  const set = new TokenSet(
    secrets.map((s, i) => ({ name: `t${i}`, sha256: sha256(s), description: undefined })),
  );
  const spy = mock.method(crypto, "timingSafeEqual");
  // The module's named import follows the patched builtin only after this.
  syncBuiltinESMExports();
  t.after(() => {
    spy.mock.restore();
    syncBuiltinESMExports();
  });
  for (const presented of [secrets[0] ?? "", secrets[4] ?? "", "not a token", "x".repeat(5000)]) {
    spy.mock.resetCalls();
    set.match(presented);
    assert.equal(spy.mock.callCount(), 5, "one comparison per entry, no early exit");
    const expected = sha256(presented);
    for (const call of spy.mock.calls) {
      const [left, right] = call.arguments as [Buffer, Buffer];
      assert.equal(left.length, 32);
      assert.equal(right.length, 32);
      assert.ok(left.equals(expected), "the presented token's digest, never the token itself");
    }
  }
  assert.deepEqual(
    spy.mock.calls.map((c) => c.result),
    [false, false, false, false, false],
    "the last presented value matched nothing",
  );
});
