import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { ResourceExhaustedError } from "../../src/errors.ts";
import type { Md5CheckedStream } from "../../src/oras/state-codec.ts";
import { startCoreFixture, str, text } from "./fixture.ts";

const fx = await startCoreFixture();
const MiB = 1024 * 1024;

/** `parts` pieces of `size` bytes, each a fresh buffer, with a declared MD5 checked by `expect`. */
function declared(parts: number, size: number, expect: Uint8Array): Md5CheckedStream & { sums: string[] } {
  const sums: string[] = [];
  return {
    sums,
    checkMd5(md5: Uint8Array) {
      sums.push(Buffer.from(md5).toString("hex"));
      if (!Buffer.from(md5).equals(expect)) throw new Error("declared MD5 does not match");
    },
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < parts; i++) yield new Uint8Array(size).fill(i + 1);
    },
  };
}

function md5Of(parts: number, size: number): Buffer {
  const hash = createHash("md5");
  for (let i = 0; i < parts; i++) hash.update(new Uint8Array(size).fill(i + 1));
  return hash.digest();
}

describe("streamed state writes", () => {
  for (const compression of ["none", "gzip"] as const) {
    test(`${compression}: a declared MD5 is checked once against the written sum`, async () => {
      const mgr = fx.backend(fx.repo(), { compression }).stateMgr("default");
      const stream = declared(3, MiB, md5Of(3, MiB));
      const put = await mgr.putStream(stream);
      assert.deepEqual(stream.sums, [Buffer.from(put.md5).toString("hex")]);
      assert.equal(put.size, 3 * MiB);
    });

    test(`${compression}: a wrong declared MD5 fails the write and leaves the old state`, async () => {
      const mgr = fx.backend(fx.repo(), { compression }).stateMgr("default");
      await mgr.put(text("keep me"));
      const stream = declared(3, MiB, md5Of(1, MiB));
      await assert.rejects(mgr.putStream(stream), /declared MD5 does not match/);
      assert.equal(stream.sums.length, 1);
      assert.equal(str((await mgr.get())?.data ?? new Uint8Array()), "keep me");
    });
  }

  test("gzip: a stream over the limit is refused (not left hanging) and leaves the old state", async () => {
    const mgr = fx.backend(fx.repo(), { compression: "gzip", maxStateSize: MiB }).stateMgr("default");
    await mgr.put(text("keep me"));
    async function* tooBig() {
      for (let i = 0; i < 3; i++) yield new Uint8Array(512 * 1024);
    }
    await assert.rejects(mgr.putStream(tooBig()), ResourceExhaustedError);
    assert.equal(str((await mgr.get())?.data ?? new Uint8Array()), "keep me");
  });
});
