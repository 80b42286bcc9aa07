import assert from "node:assert/strict";
import { test } from "node:test";
import { rechunk, slices } from "../../src/rpc/rechunk.ts";

/** Bytes 0, 1, 2, ... (mod 251, so no piece boundary lines up with the pattern). */
function pattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = i % 251;
  return out;
}

async function* reads(data: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < data.byteLength; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    yield data.subarray(at, at + n);
    at += n;
  }
}

/** Copies each piece before asking for the next, as a consumer of rechunk must. */
async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const piece of source) out.push(Buffer.from(piece));
  return out;
}

test("rechunk regroups uneven reads into full pieces and a shorter last one, bytes intact", async () => {
  const data = pattern(10_000);
  const pieces = await collect(rechunk(reads(data, [1, 333, 0, 2_048, 77, 5_000]), 1_024));
  assert.deepEqual(
    pieces.map((p) => p.byteLength),
    [...Array.from({ length: 9 }, () => 1_024), 10_000 - 9 * 1_024],
  );
  assert.ok(Buffer.concat(pieces).equals(data));
});

test("rechunk passes a read holding whole pieces on uncopied and gathers the rest in one buffer", async () => {
  const data = pattern(4 * 1_024 + 100);
  const big = data.subarray(0, 2 * 1_024 + 50);
  const rest = data.subarray(big.byteLength);
  const views: Uint8Array[] = [];
  const copies: Buffer[] = [];
  for await (const piece of rechunk(reads(data, [big.byteLength, 10, 30, rest.byteLength]), 1_024)) {
    views.push(piece);
    copies.push(Buffer.from(piece));
  }
  assert.ok(Buffer.concat(copies).equals(data));
  assert.equal(views.length, 5);
  // The first two pieces are views of the read itself.
  assert.equal(views[0]?.buffer, data.buffer);
  assert.equal(views[0]?.byteOffset, 0);
  assert.equal(views[1]?.buffer, data.buffer);
  assert.equal(views[1]?.byteOffset, 1_024);
  // The third piece is gathered from four reads; the last read then holds a whole piece again.
  assert.notEqual(views[2]?.buffer, data.buffer);
  assert.equal(views[3]?.buffer, data.buffer);
  assert.equal(views[3]?.byteOffset, 3 * 1_024);
  // The short last piece is gathered in the same buffer as the third: one buffer per stream.
  assert.equal(views[4]?.byteLength, 100);
  assert.equal(views[4]?.buffer, views[2]?.buffer);
});

test("rechunk of an empty stream, or of empty reads, yields nothing", async () => {
  assert.deepEqual(await collect(rechunk(reads(new Uint8Array(0), [1]), 16)), []);
  async function* empties(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(0);
    yield new Uint8Array(0);
  }
  assert.deepEqual(await collect(rechunk(empties(), 16)), []);
});

test("slices cuts an in-memory state into views of at most the size", () => {
  const data = pattern(2_500);
  const parts = [...slices(data, 1_000)];
  assert.deepEqual(
    parts.map((p) => p.byteLength),
    [1_000, 1_000, 500],
  );
  assert.ok(parts.every((p) => p.buffer === data.buffer));
  assert.deepEqual([...slices(new Uint8Array(0), 1_000)], []);
});
