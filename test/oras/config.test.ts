import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError } from "../../src/errors.ts";
import { createBackend } from "../../src/oras/index.ts";

describe("backend configuration", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ repository: "" }, /repository is required/],
    [
      { repository: "127.0.0.1:5000/x", compression: "zstd" },
      /compression must be "none" or "gzip", got "zstd"/,
    ],
    [{ repository: "127.0.0.1:5000/x", lockTTL: -1 }, /lockTTL must be a non-negative integer/],
    [{ repository: "127.0.0.1:5000/x", maxVersions: 1.5 }, /maxVersions must be a non-negative integer/],
    [{ repository: "127.0.0.1:5000/x", maxStateSize: Number.NaN }, /maxStateSize/],
    [{ repository: "127.0.0.1:5000/Upper/Case" }, /./],
    [{ repository: "127.0.0.1:5000/x:tag" }, /tag/],
    [{ repository: "oci-layout:" }, /names no directory/],
  ];
  for (const [cfg, msg] of bad) {
    test(`refuses ${JSON.stringify(cfg)}`, () => {
      assert.throws(
        () => createBackend(cfg as never),
        (e: unknown) => e instanceof InvalidArgumentError && msg.test(e.message),
      );
    });
  }

  test("compression is trimmed and lower-cased like ghoten's attribute", async () => {
    const b = createBackend({
      repository: "127.0.0.1:5000/x",
      compression: " GZIP " as never,
      plainHTTP: true,
    });
    await b.close();
  });
});
