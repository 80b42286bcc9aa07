/**
 * The summary and the diff on their own, bytes in and result out: every shape a stored state may
 * have (format 4, format 3, encrypted, not JSON, JSON of another shape, malformed entries, nesting
 * too deep), masking, the caps on reported paths and detailed changes, and that the memory-saving
 * path of a large diff gives the same answer as the in-memory one.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { diffStates, MAX_DETAILED_CHANGES, MAX_PATHS_PER_RESOURCE } from "../../src/summary/state-diff.ts";
import { summarizeState } from "../../src/summary/state-summary.ts";
import { SummaryCache } from "../../src/summary/summary-cache.ts";

const bytes = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

function v4(resources: unknown[], outputs: Record<string, unknown> = {}, serial = 1) {
  return { version: 4, terraform_version: "1.9.0", serial, lineage: "L", outputs, resources };
}

const instance = (attributes: Record<string, unknown>, index_key?: unknown) => ({
  schema_version: 0,
  attributes,
  ...(index_key !== undefined ? { index_key } : {}),
});

describe("summarizeState", () => {
  test("a format-4 state: data sources counted apart, counts by type and module, outputs masked", () => {
    const s = summarizeState(
      bytes(
        v4(
          [
            {
              mode: "managed",
              type: "aws_instance",
              name: "web",
              provider: "p",
              instances: [instance({}, 0), instance({}, 1)],
            },
            { mode: "data", type: "aws_ami", name: "base", provider: "p", instances: [instance({})] },
            {
              module: "module.net",
              mode: "managed",
              type: "aws_subnet",
              name: "s",
              provider: "p",
              instances: [instance({})],
            },
            { mode: "managed", type: "aws_subnet", name: "gone", provider: "p", instances: [] },
          ],
          {
            ip: { value: "10.0.0.1", type: "string" },
            password: { value: "hunter2", type: "string", sensitive: true },
            broken: "not an object",
          },
        ),
      ),
    );
    assert.equal(s.format, "terraform_json");
    assert.deepEqual([s.serial, s.lineage, s.terraformVersion, s.stateVersion], [1, "L", "1.9.0", 4]);
    assert.deepEqual([s.resourceCount, s.dataSourceCount], [3, 1]);
    assert.deepEqual(s.byType, [
      ["aws_instance", 2],
      ["aws_subnet", 1],
    ]);
    assert.deepEqual(s.byModule, [
      ["", 2],
      ["module.net", 1],
    ]);
    assert.deepEqual(
      s.resources.map((r) => [r.address, r.instanceCount]),
      [
        ["aws_instance.web", 2],
        ["data.aws_ami.base", 1],
        ["module.net.aws_subnet.s", 1],
        ["aws_subnet.gone", 0],
      ],
    );
    assert.deepEqual(s.outputs, [
      { name: "broken", sensitive: true, typeJson: "", valueJson: "" },
      { name: "ip", sensitive: false, typeJson: '"string"', valueJson: '"10.0.0.1"' },
      { name: "password", sensitive: true, typeJson: '"string"', valueJson: "" },
    ]);
    assert.ok(!JSON.stringify(s).includes("hunter2"));
  });

  test("a format-3 state (Terraform before 0.12): modules, count suffixes and data sources", () => {
    const s = summarizeState(
      bytes({
        version: 3,
        serial: 7,
        lineage: "old",
        terraform_version: "0.11.14",
        modules: [
          {
            path: ["root"],
            outputs: { addr: { sensitive: false, type: "string", value: "x" } },
            resources: { "aws_instance.web.0": {}, "aws_instance.web.1": {}, "data.aws_ami.a": {} },
          },
          { path: ["root", "net"], outputs: {}, resources: { "aws_vpc.main": {} } },
        ],
      }),
    );
    assert.equal(s.format, "terraform_json");
    assert.deepEqual([s.resourceCount, s.dataSourceCount, s.serial], [3, 1, 7]);
    assert.deepEqual(s.byModule, [
      ["", 2],
      ["module.net", 1],
    ]);
    assert.deepEqual(
      s.outputs.map((o) => o.valueJson),
      ['"x"'],
    );
  });

  test("encrypted, not JSON, not an object, another JSON shape, too deep: said so, never thrown", () => {
    const enc = summarizeState(
      bytes({
        serial: 3,
        lineage: "abc",
        meta: { k: "x" },
        encrypted_data: "AAAA",
        encryption_version: "v0",
      }),
    );
    assert.deepEqual([enc.format, enc.serial, enc.lineage, enc.resourceCount], ["encrypted", 3, "abc", 0]);
    assert.match(enc.detail, /OpenTofu state encryption/);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array([0xc3, 0x28]), /not JSON/],
      [bytes("{"), /not JSON/],
      [bytes("[1,2]"), /not an object/],
      [bytes({ hello: 1 }), /not a Terraform state/],
      [bytes(`${"[".repeat(200_000)}${"]".repeat(200_000)}`), /not an object|too deeply|not JSON/],
    ];
    for (const [data, detail] of cases) {
      const s = summarizeState(data);
      assert.equal(s.format, "opaque");
      assert.match(s.detail, detail);
    }
    // JSON the parser reads but JSON.stringify cannot write back (it runs out of stack): a clear
    // "too deep" in the summary and the diff, not a thrown RangeError (an internal error).
    const nested = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;
    const deepOutput = `{"version":4,"serial":1,"lineage":"d","resources":[],"outputs":{"o":{"value":${nested}}}}`;
    const deepResource = `{"version":4,"serial":1,"lineage":"d","resources":[{"type":"t","name":"n","instances":[{"attributes":${nested}}]}]}`;
    assert.deepEqual(
      [summarizeState(bytes(deepOutput)).format, summarizeState(bytes(deepOutput)).detail],
      ["opaque", "it is nested too deeply to read"],
    );
    assert.equal(
      summarizeState(bytes(deepResource)).resourceCount,
      1,
      "instances are counted, not serialized",
    );
    const plain = bytes(v4([]));
    assert.deepEqual(diffStates(plain, bytes(deepResource)), {
      comparable: false,
      side: "to",
      detail: "it is nested too deeply to read",
    });
  });

  test("an empty state and a state with malformed entries", () => {
    assert.equal(summarizeState(bytes({ version: 4, serial: 0, lineage: "x" })).resourceCount, 0);
    const s = summarizeState(
      bytes(v4([null, 3, { mode: "managed", type: "t", name: "n", instances: "no" }])),
    );
    assert.deepEqual([s.format, s.resourceCount, s.resources.length], ["terraform_json", 0, 1]);
  });
});

describe("diffStates", () => {
  const base = v4(
    [
      {
        mode: "managed",
        type: "t",
        name: "a",
        instances: [instance({ id: "1", tags: { Name: "x", "app.io/x": "1" } })],
      },
      { mode: "managed", type: "t", name: "b", instances: [instance({ id: "2" })] },
    ],
    { pw: { value: "old-secret", type: "string", sensitive: true }, same: { value: 1, type: "number" } },
  );
  const next = v4(
    [
      {
        mode: "managed",
        type: "t",
        name: "a",
        instances: [instance({ id: "1", tags: { Name: "y", "app.io/x": "2" }, extra: [1] })],
      },
      { mode: "managed", type: "t", name: "c", instances: [instance({ id: "3" })] },
    ],
    {
      pw: { value: "new-secret", type: "string", sensitive: true },
      same: { value: 1, type: "number" },
      added: { value: "v", type: "string" },
    },
    2,
  );

  test("added, removed, changed with paths; a changed secret is shown as changed, never its value", () => {
    const d = diffStates(bytes(base), bytes(next));
    assert.ok(d.comparable);
    assert.deepEqual([d.from.serial, d.to.serial], [1, 2]);
    assert.deepEqual(d.resources, [
      {
        address: "t.a",
        kind: "changed",
        changedPaths: ["attributes.extra", "attributes.tags.Name", 'attributes.tags["app.io/x"]'],
        pathsTruncated: false,
      },
      { address: "t.b", kind: "removed", changedPaths: [], pathsTruncated: false },
      { address: "t.c", kind: "added", changedPaths: [], pathsTruncated: false },
    ]);
    assert.deepEqual(
      d.outputs.map((o) => [o.name, o.kind, o.from?.valueJson, o.to?.valueJson]),
      [
        ["added", "added", undefined, '"v"'],
        ["pw", "changed", "", ""],
      ],
    );
    assert.ok(!JSON.stringify(d).includes("secret"));
  });

  test("the two-parse path for large states gives the same answer as the in-memory one", () => {
    assert.deepEqual(diffStates(bytes(base), bytes(next), 0), diffStates(bytes(base), bytes(next)));
  });

  test("paths per instance and detailed instances are capped, and the caps are reported", () => {
    const wide = (v: number) => Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, v]));
    const many = (v: number) =>
      v4([
        { mode: "managed", type: "t", name: "a_wide", instances: [instance(wide(v))] },
        {
          mode: "managed",
          type: "t",
          name: "n",
          instances: Array.from({ length: MAX_DETAILED_CHANGES + 5 }, (_, i) => instance({ v }, i)),
        },
      ]);
    const d = diffStates(bytes(many(1)), bytes(many(2)));
    assert.ok(d.comparable);
    assert.equal(d.resources.length, MAX_DETAILED_CHANGES + 6);
    assert.equal(d.pathsTruncated, true);
    const wideChange = d.resources.find((r) => r.address === "t.a_wide");
    assert.equal(wideChange?.changedPaths.length, MAX_PATHS_PER_RESOURCE);
    assert.equal(wideChange?.pathsTruncated, true);
    const bare = d.resources.filter((r) => r.pathsTruncated && r.changedPaths.length === 0);
    assert.equal(bare.length, d.resources.length - MAX_DETAILED_CHANGES);
  });

  test("a side that is not Terraform JSON is named", () => {
    const enc = bytes({ serial: 1, lineage: "l", encrypted_data: "x", encryption_version: "v0" });
    assert.deepEqual(diffStates(enc, bytes(base)), {
      comparable: false,
      side: "from",
      detail: "it is encrypted (OpenTofu state encryption)",
    });
    const d = diffStates(bytes(base), bytes("nope"));
    assert.ok(!d.comparable && d.side === "to");
  });
});

describe("SummaryCache", () => {
  test("keeps at most its entries and bytes, least recently used out first", () => {
    const cache = new SummaryCache<string>({ maxEntries: 2, maxBytes: 100 }, (v) => v.length);
    cache.get("a", () => "1");
    cache.get("b", () => "2");
    cache.peek("a");
    cache.get("c", () => "3");
    assert.equal(cache.peek("b"), undefined, "b was least recently used");
    assert.equal(cache.peek("a"), "1");
    cache.get("big", () => "x".repeat(30));
    assert.equal(cache.peek("big"), undefined, "over a quarter of the budget: not kept");
    cache.get("d", () => "y".repeat(20));
    cache.get("e", () => "z".repeat(20));
    assert.ok(cache.stats().bytes <= 100 && cache.stats().entries <= 2);
    assert.equal(cache.stats().computed, 6);
  });
});
