import assert from "node:assert/strict";
import { test } from "node:test";
import { CanceledError, DeadlineExceededError } from "../../src/errors.ts";
import { CallContext, sleep } from "../../src/oci/call-context.ts";

test("a fractional deadline (a grpc-timeout in µs or ns) makes a working context", async () => {
  const call = new CallContext({ deadline: Date.now() + 30.000001 }, "op");
  assert.equal(call.done, false);
  await assert.rejects(sleep(1000, call), DeadlineExceededError);
});

test("a deadline past Node's longest timer does not fire at once", async () => {
  const call = new CallContext({ deadline: Date.now() + 40 * 24 * 3600 * 1000 }, "op");
  await sleep(20, call);
  assert.equal(call.signal.aborted, false);
});

test("the caller's signal firing after the deadline passed reports the deadline; before it, a cancel", async () => {
  const late = new AbortController();
  const call = new CallContext({ signal: late.signal, deadline: Date.now() + 5 }, "op");
  await new Promise((r) => setTimeout(r, 15));
  late.abort();
  assert.ok(call.abortError() instanceof DeadlineExceededError);
  const early = new AbortController();
  const other = new CallContext({ signal: early.signal, deadline: Date.now() + 60_000 }, "op");
  early.abort();
  assert.ok(other.abortError() instanceof CanceledError);
});
