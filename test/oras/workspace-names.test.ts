import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError } from "../../src/errors.ts";
import {
  hashedWorkspaceTag,
  parseStateTag,
  parseVersionSuffix,
  tagsFor,
  validateWorkspaceName,
  versionTagCandidates,
  workspaceTag,
} from "../../src/oras/workspace-names.ts";

describe("workspace tags (wire format §1): exactly ghoten's for every name ghoten can use", () => {
  test("a name that is a valid tag is used unchanged", () => {
    assert.equal(workspaceTag("default"), "default");
    assert.equal(workspaceTag("prod.eu-west_1"), "prod.eu-west_1");
    assert.deepEqual(tagsFor("dev"), {
      name: "dev",
      wsTag: "dev",
      state: "state-dev",
      locked: "locked-dev",
      unlocked: "unlocked-dev",
      ambiguous: false,
    });
  });

  test("other names hash to ws-<first 8 bytes of SHA-256>, the values ghoten computes", () => {
    assert.equal(workspaceTag("my workspace"), "ws-052c7440eea985d3");
    assert.equal(workspaceTag("a/b"), "ws-c14cddc033f64b9d");
    assert.equal(workspaceTag("ünïcode"), hashedWorkspaceTag("ünïcode"));
    assert.equal(tagsFor("a/b").ambiguous, true);
  });

  test("B2: a name ending in -v<N> keeps ghoten's literal tag, marked ambiguous", () => {
    for (const name of ["rel-v3", "foo-v2", "foo-v007"]) {
      const t = tagsFor(name);
      assert.equal(t.wsTag, name);
      assert.equal(t.state, `state-${name}`);
      assert.equal(t.locked, `locked-${name}`);
      assert.equal(t.ambiguous, true);
    }
    // Out of ghoten's version range: no version tag looks like it.
    assert.equal(tagsFor("foo-v0").ambiguous, false);
    assert.equal(tagsFor("foo-vpc").ambiguous, false);
  });

  test("B3: a literal ws-<16 hex> name keeps ghoten's literal tag, marked ambiguous", () => {
    const alias = hashedWorkspaceTag("a/b");
    assert.equal(workspaceTag(alias), alias);
    assert.equal(tagsFor(alias).state, tagsFor("a/b").state);
    assert.equal(tagsFor(alias).ambiguous, true);
  });

  test("B4: names up to 121 characters are literal (ghoten's state and lock tags fit); longer ones hash", () => {
    for (const n of [110, 111, 115, 119, 120, 121]) {
      const name = "a".repeat(n);
      const t = tagsFor(name);
      assert.equal(t.wsTag, name, `${n}`);
      assert.ok(t.state.length <= 128 && t.locked.length <= 128 && t.unlocked.length <= 128, `${n}`);
    }
    // ghoten's own unlocked sentinel would be 129 and 130 characters: a hashed one instead.
    assert.match(tagsFor("a".repeat(120)).unlocked, /^unlocked-ws-[0-9a-f]{16}$/);
    for (const n of [122, 128, 129, 200]) {
      const t = tagsFor("b".repeat(n));
      assert.match(t.wsTag, /^ws-[0-9a-f]{16}$/, `${n}`);
      assert.equal(t.ambiguous, true);
    }
  });

  test("version tags: ghoten's spelling, then stver-, then the hash where a long name's do not fit", () => {
    const short = tagsFor("prod");
    assert.deepEqual(versionTagCandidates(short, 7), ["state-prod-v7", "stver-prod-v7"]);
    const long = tagsFor("c".repeat(115));
    // 6 + 115 + 2 + 1 = 124: fits; with 2^30 it would not, so the hashed spelling is a candidate too.
    assert.deepEqual(versionTagCandidates(long, 7), [
      `state-${"c".repeat(115)}-v7`,
      `stver-${"c".repeat(115)}-v7`,
      `stver-${hashedWorkspaceTag("c".repeat(115))}-v7`,
    ]);
    assert.deepEqual(versionTagCandidates(long, 123456), [
      `stver-${hashedWorkspaceTag("c".repeat(115))}-v123456`,
    ]);
    for (const n of [1, 99999, 2 ** 30]) {
      for (const tag of versionTagCandidates(tagsFor("d".repeat(121)), n)) assert.ok(tag.length <= 128, tag);
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
