/**
 * Reading a caller's stream with prompt cancellation keeps nothing it has read: a long upload's
 * chunks must be collectable as soon as they have passed (a race against a promise that lives as
 * long as the call once kept a whole 256 MiB upload in memory).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { CanceledError } from "../../src/errors.ts";
import { CallContext } from "../../src/oci/call-context.ts";
import { abortableIterate } from "../../src/oci/layout-abortable.ts";

v8.setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

test("chunks that have passed are not kept reachable while the call goes on", async () => {
  const refs: WeakRef<Uint8Array>[] = [];
  async function* source() {
    for (let i = 0; i < 64; i++) {
      const chunk = new Uint8Array(64 * 1024);
      refs.push(new WeakRef(chunk));
      yield chunk;
    }
  }
  const controller = new AbortController();
  const call = new CallContext({ signal: controller.signal }, "reading a test stream");
  let seen = 0;
  let alive = -1;
  for await (const _ of abortableIterate(source(), call)) {
    // Midway through a long upload: what has passed must not hang off the call's signal.
    if (++seen === 60) {
      await new Promise((r) => setImmediate(r));
      gc();
      alive = refs.slice(0, 50).filter((r) => r.deref() !== undefined).length;
    }
  }
  assert.equal(seen, 64);
  assert.equal(alive, 0, `${alive} of the first 50 chunks are still reachable`);
  controller.abort();
});

test("an abort ends a read that waits for a chunk at once", async () => {
  const controller = new AbortController();
  async function* stalled(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(1);
    await new Promise(() => {});
  }
  const read = (async () => {
    for await (const _ of abortableIterate(stalled(), new CallContext({ signal: controller.signal }, "op"))) {
      controller.abort();
    }
  })();
  await assert.rejects(read, CanceledError);
});
