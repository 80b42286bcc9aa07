import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError } from "../../src/errors.ts";
import {
  hashedWorkspaceTag,
  parseStateTag,
  parseVersionSuffix,
  tagsFor,
  validateWorkspaceName,
  workspaceTag,
} from "../../src/oras/workspace-names.ts";

describe("workspace tags (wire format §1)", () => {
  test("a name that is a valid tag is used unchanged", () => {
    assert.equal(workspaceTag("default"), "default");
    assert.equal(workspaceTag("prod.eu-west_1"), "prod.eu-west_1");
    assert.deepEqual(tagsFor("dev"), {
      name: "dev",
      wsTag: "dev",
      state: "state-dev",
      locked: "locked-dev",
      unlocked: "unlocked-dev",
    });
  });

  test("other names hash to ws-<first 8 bytes of SHA-256>, the values ghoten computes", () => {
    assert.equal(workspaceTag("my workspace"), "ws-052c7440eea985d3");
    assert.equal(workspaceTag("a/b"), "ws-c14cddc033f64b9d");
    assert.equal(workspaceTag("ünïcode"), hashedWorkspaceTag("ünïcode"));
  });

  test("B2: a name ending in -v<N> is hashed, so it never collides with a version tag", () => {
    // The seed uses `state-foo-v2` for workspace foo-v2, which is also version 2 of foo.
    assert.match(workspaceTag("foo-v2"), /^ws-[0-9a-f]{16}$/);
    assert.match(workspaceTag("foo-v+3"), /^ws-[0-9a-f]{16}$/);
    // Out of ghoten's version range: not a version tag, so not ambiguous.
    assert.equal(workspaceTag("foo-v0"), "foo-v0");
    assert.equal(workspaceTag("foo-vpc"), "foo-vpc");
  });

  test("B3: a literal ws-<16 hex> name is hashed instead of aliasing another name's hash", () => {
    const alias = hashedWorkspaceTag("a/b");
    assert.notEqual(workspaceTag(alias), alias);
    assert.equal(workspaceTag(alias), hashedWorkspaceTag(alias));
  });

  test("B4: names whose derived tags would pass 128 characters are hashed", () => {
    const ok = "a".repeat(110);
    const long = "a".repeat(111);
    assert.equal(workspaceTag(ok), ok);
    assert.match(workspaceTag(long), /^ws-/);
    for (const n of [ok, long]) {
      const t = tagsFor(n);
      for (const tag of [t.state, t.locked, t.unlocked, `state-${t.wsTag}-v${2 ** 30}`]) {
        assert.ok(tag.length <= 128, `${tag.length}`);
      }
    }
  });
});

describe("workspace name validation", () => {
  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["x".repeat(256), /256 bytes long; the limit is 255/],
    ["é".repeat(128), /256 bytes long/],
    ["line\nbreak", /control character U\+000a at position 4/],
    ["tab\t", /U\+0009/],
    ["del\u007f", /U\+007f/],
    ["c1\u0085", /U\+0085/],
    ["bad\ud800surrogate", /not valid UTF-8/],
  ];
  for (const [name, msg] of bad) {
    test(`rejects ${JSON.stringify(name).slice(0, 30)}`, () => {
      assert.throws(
        () => validateWorkspaceName(name),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError);
          assert.match(err.message, msg);
          return true;
        },
      );
    });
  }
  test("accepts spaces, slashes, unicode and 255 bytes", () => {
    for (const n of ["my workspace", "team/prod", "日本", "x".repeat(255)]) validateWorkspaceName(n);
  });
});

describe("version tags (§5.1)", () => {
  test("split at the last -v, N in 1..2^30 as Go's Atoi reads it", () => {
    assert.deepEqual(parseVersionSuffix("foo-v-v3"), { base: "foo-v", version: 3 });
    assert.deepEqual(parseVersionSuffix("x-v007"), { base: "x", version: 7 });
    assert.deepEqual(parseVersionSuffix("x-v+3"), { base: "x", version: 3 });
    assert.equal(parseVersionSuffix("x-v0"), null);
    assert.equal(parseVersionSuffix(`x-v${2 ** 30 + 1}`), null);
    assert.equal(parseVersionSuffix("-v3"), null);
    assert.equal(parseVersionSuffix("x-vpc"), null);
  });
  test("both spellings parse; stver- is always a version", () => {
    assert.deepEqual(parseStateTag("state-dev-v4"), {
      kind: "version",
      wsTag: "dev",
      version: 4,
      spelling: "state",
    });
    assert.deepEqual(parseStateTag("stver-dev-v4"), {
      kind: "version",
      wsTag: "dev",
      version: 4,
      spelling: "stver",
    });
    assert.deepEqual(parseStateTag("state-dev"), { kind: "state", wsTag: "dev" });
    assert.equal(parseStateTag("locked-dev"), null);
    assert.equal(parseStateTag("state-"), null);
  });
});
