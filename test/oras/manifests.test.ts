import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DataLossError } from "../../src/errors.ts";
import { rfc3339Nano } from "../../src/oras/go-time.ts";
import { emptyLockInfo, lockInfoFromGoJson, lockInfoToGoJson } from "../../src/oras/lock-info.ts";
import {
  generationFromJson,
  generationToJson,
  packLockManifest,
  packStateManifest,
  packUnlockedSentinel,
  parseLockManifest,
  parseStateManifest,
} from "../../src/oras/manifests.ts";

const json = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const LAYER = {
  mediaType: "application/vnd.terraform.statefile.v1",
  digest: `sha256:${"a".repeat(64)}`,
  size: 10,
};

describe("state manifest (§2.1)", () => {
  test("packs the image-manifest-with-artifactType shape oras-go writes", () => {
    const now = Date.UTC(2026, 0, 2, 7, 33, 40, 120);
    const m = json(packStateManifest({ workspace: "my ws", layer: LAYER, version: 3, nowMs: now }));
    assert.deepEqual(Object.keys(m), [
      "schemaVersion",
      "mediaType",
      "artifactType",
      "config",
      "layers",
      "annotations",
    ]);
    assert.equal(m.schemaVersion, 2);
    assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(m.artifactType, "application/vnd.terraform.state.v1");
    assert.deepEqual(m.config, {
      mediaType: "application/vnd.oci.empty.v1+json",
      digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
      size: 2,
      data: "e30=",
    });
    assert.deepEqual(m.layers, [LAYER]);
    assert.deepEqual(m.annotations, {
      "org.opencontainers.image.created": "2026-01-02T07:33:40Z",
      "org.terraform.state.updated_at": "2026-01-02T07:33:40.12Z",
      "org.terraform.state.version": "3",
      "org.terraform.workspace": "my ws",
    });
  });

  test("no version annotation with versioning off; no layers for an empty workspace", () => {
    const m = json(packStateManifest({ workspace: "w", layer: null, nowMs: 0 }));
    assert.deepEqual(m.layers, []);
    assert.equal(m.annotations["org.terraform.state.version"], undefined);
    assert.equal(parseStateManifest(enc(m), "t").layer, null);
  });

  test("RFC3339Nano trims trailing zeros like Go", () => {
    assert.equal(rfc3339Nano(Date.UTC(2026, 0, 2, 7, 33, 40, 0)), "2026-01-02T07:33:40Z");
    assert.equal(rfc3339Nano(Date.UTC(2026, 0, 2, 7, 33, 40, 500)), "2026-01-02T07:33:40.5Z");
  });

  test("B8: anything unexpected at a state tag is data loss naming the tag, never 'no state'", () => {
    const base = json(packStateManifest({ workspace: "w", layer: LAYER, nowMs: 0 }));
    const cases: [unknown, RegExp][] = [
      [
        { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] },
        /image index/,
      ],
      [{ ...base, artifactType: "application/vnd.other" }, /unexpected state manifest artifactType/],
      [{ ...base, layers: [{ ...LAYER, mediaType: "text/plain" }] }, /unsupported state layer media type/],
      [{ ...base, layers: [LAYER, LAYER] }, /2 layers/],
      [{ ...base, schemaVersion: 1 }, /schemaVersion/],
      ["not an object", /not a JSON object/],
    ];
    for (const [m, re] of cases) {
      assert.throws(
        () => parseStateManifest(enc(m), "state at tag state-w"),
        (e: unknown) => e instanceof DataLossError && re.test(e.message) && e.message.includes("state-w"),
      );
    }
    assert.throws(
      () => parseStateManifest(new Uint8Array([0xff, 0xfe]), "state at tag state-w"),
      DataLossError,
    );
  });

  test("an empty artifactType and a gzip layer are read", () => {
    const base = json(packStateManifest({ workspace: "w", layer: LAYER, nowMs: 0 }));
    delete base.artifactType;
    base.layers[0].mediaType = "application/vnd.terraform.statefile.v1+gzip";
    const p = parseStateManifest(enc(base), "t");
    assert.equal(p.gzip, true);
  });
});

describe("lock manifest (§2.2–2.4)", () => {
  const info = {
    id: "0b5e6c5a-8f2e-4d2c-9f5e-3f1c2b7a9d10",
    operation: "OperationTypeApply",
    info: "",
    who: "alice@host",
    version: "1.10.0",
    created: "2026-01-02T07:33:40.123456789Z",
    path: "",
  };

  test("generation JSON keeps int64 nanoseconds exact", () => {
    const g = { generation: 6n, leaseExpiryNs: 1767340720123456789n, holderId: info.id };
    const text = generationToJson(g);
    assert.equal(text, `{"generation":6,"lease_expiry":1767340720123456789,"holder_id":"${info.id}"}`);
    assert.deepEqual(generationFromJson(text), g);
    assert.equal(generationToJson({ generation: 1n, leaseExpiryNs: 0n, holderId: "" }), '{"generation":1}');
    assert.equal(generationFromJson("{not json"), null);
  });

  test("LockInfo JSON uses Go's keys and order, and survives a round trip with nanoseconds", () => {
    const text = lockInfoToGoJson(info);
    assert.deepEqual(Object.keys(JSON.parse(text)), [
      "ID",
      "Operation",
      "Info",
      "Who",
      "Version",
      "Created",
      "Path",
    ]);
    assert.deepEqual(lockInfoFromGoJson(text), info);
    assert.throws(() => lockInfoFromGoJson('{"ID": 5}'), /field "ID" must be a string/);
  });

  test("a packed lock parses back as held, with the state tag as Path", () => {
    const bytes = packLockManifest({
      workspace: "w",
      info: { ...info, path: "state-w" },
      generation: { generation: 1n, leaseExpiryNs: 0n, holderId: info.id },
      nowMs: 0,
    });
    const m = json(bytes);
    assert.equal(m.artifactType, "application/vnd.terraform.lock.v1");
    assert.equal(m.layers.length, 1);
    assert.equal(m.layers[0].mediaType, "application/vnd.oci.empty.v1+json");
    assert.equal(m.annotations["org.terraform.lock.id"], info.id);
    const p = parseLockManifest(bytes, "lock", "state-w");
    assert.equal(p.kind, "held");
    if (p.kind === "held") assert.equal(p.info.path, "state-w");
  });

  test("the unlocked sentinel and an empty lock read as free", () => {
    assert.equal(parseLockManifest(packUnlockedSentinel("w", 0), "lock", "state-w").kind, "free");
  });

  test("only lock.id set: the holder is {ID, Path: state tag}", () => {
    const bytes = enc({ schemaVersion: 2, annotations: { "org.terraform.lock.id": "abc" } });
    const p = parseLockManifest(bytes, "lock", "state-w");
    assert.deepEqual(p, {
      kind: "held",
      info: { ...emptyLockInfo(), id: "abc", path: "state-w" },
      generation: null,
    });
  });

  test("B6: unparseable lock info or a wrong artifactType is 'corrupt', not an inconsistent read", () => {
    const bad = enc({ schemaVersion: 2, annotations: { "org.terraform.lock.info": "{oops" } });
    assert.equal(parseLockManifest(bad, "lock", "state-w").kind, "corrupt");
    const wrong = enc({ schemaVersion: 2, artifactType: "x/y", annotations: {} });
    assert.equal(parseLockManifest(wrong, "lock", "state-w").kind, "corrupt");
  });
});
