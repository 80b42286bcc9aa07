/**
 * The WatchLock endpoint on bare HTTP/2 streams (src/http/watch-endpoint.ts): what it answers
 * byte for byte in each protocol, what it leaves to Connect, and that thousands of streams come
 * and go without leaving anything behind.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UnauthenticatedError } from "../../src/errors.ts";
import {
  LockEventKind,
  StateService,
  WatchLockRequestSchema,
  WatchLockResponseSchema,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { client, startRegistryFixture } from "../rpc/fixture.ts";
import { envelope, frames, rawH2 } from "./wire.ts";

const fx = await startRegistryFixture();
const PATH = "/tfstate.v1.StateService/WatchLock";

/** One WatchLock request on a fresh HTTP/2 connection (see wire.ts). */
const raw = (
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  until?: (body: Buffer) => boolean,
) => rawH2(url, PATH, headers, body, until);

const request = (workspace: string) =>
  toBinary(WatchLockRequestSchema, create(WatchLockRequestSchema, { workspace }));
/** A live stream has sent its snapshot and SNAPSHOT_COMPLETE. */
const live = (body: Buffer) => frames(body).length >= 2;

test("the endpoint answers each protocol in its own framing, with the same content types Connect uses", async () => {
  const { url } = await fx.serve();
  const cases = [
    { ct: "application/grpc", answer: "application/grpc+proto" },
    { ct: "application/grpc+proto", answer: "application/grpc+proto" },
    { ct: "application/grpc-web+proto", answer: "application/grpc-web+proto" },
    { ct: "application/connect+proto", answer: "application/connect+proto" },
  ];
  for (const c of cases) {
    const got = await raw(url, { "content-type": c.ct }, envelope(0, request("default")), live);
    assert.equal(got.headers[":status"], 200, c.ct);
    assert.equal(got.headers["content-type"], c.answer, c.ct);
    assert.equal(got.headers["grpc-encoding"], undefined, `${c.ct}: never compressed`);
    const [snapshot, complete] = frames(got.body).map((f) => fromBinary(WatchLockResponseSchema, f.payload));
    assert.equal(snapshot?.kind, LockEventKind.SNAPSHOT, c.ct);
    assert.equal(snapshot?.workspace, "default", c.ct);
    assert.equal(complete?.kind, LockEventKind.SNAPSHOT_COMPLETE, c.ct);
  }

  const json = await raw(
    url,
    { "content-type": "application/connect+json" },
    envelope(0, Buffer.from('{"workspace":"default"}')),
    live,
  );
  assert.equal(json.headers["content-type"], "application/connect+json");
  const first = JSON.parse(frames(json.body)[0]?.payload.toString() ?? "null");
  assert.deepEqual([first.workspace, first.kind], ["default", "LOCK_EVENT_KIND_SNAPSHOT"]);
});

test("bad requests get INVALID_ARGUMENT or RESOURCE_EXHAUSTED, each protocol in its own form", async () => {
  const { url } = await fx.serve({ server: { maxMessageBytes: 64 * 1024 } });
  const bad: { what: string; body: Uint8Array; code: Code; message: RegExp; json?: boolean }[] = [
    {
      what: "a bad workspace name",
      body: envelope(0, request("bad\tname")),
      code: Code.InvalidArgument,
      message: /control character/,
    },
    {
      what: "a cut envelope",
      body: Buffer.from([0, 0, 0]),
      code: Code.InvalidArgument,
      message: /incomplete envelope/,
    },
    {
      what: "a short message",
      body: envelope(0, request("default")).subarray(0, 8),
      code: Code.InvalidArgument,
      message: /incomplete envelope/,
    },
    {
      what: "two messages",
      body: Buffer.concat([envelope(0, request("a")), envelope(0, request("b"))]),
      code: Code.InvalidArgument,
      message: /exactly one/,
    },
    {
      what: "a compressed message without an encoding",
      body: envelope(1, gzipSync(request("default"))),
      code: Code.InvalidArgument,
      message: /compressed/,
    },
    {
      what: "bytes that are no WatchLockRequest",
      body: envelope(0, Buffer.from([0x0a, 0x20, 0x01])),
      code: Code.InvalidArgument,
      message: /cannot decode/,
    },
    {
      what: "a request over the message limit",
      body: envelope(0, Buffer.alloc(70 * 1024)),
      code: Code.ResourceExhausted,
      message: /larger than configured readMaxBytes 65536/,
    },
    {
      what: "JSON cut short",
      body: envelope(0, Buffer.from('{"workspace":')),
      code: Code.InvalidArgument,
      message: /cannot decode/,
      json: true,
    },
  ];
  for (const b of bad) {
    const codec = b.json ? "json" : "proto";
    const grpc = await raw(url, { "content-type": `application/grpc+${codec}` }, b.body);
    // Trailers-only: the status comes with the headers, nothing else follows.
    assert.equal(grpc.headers["grpc-status"], String(b.code), `gRPC, ${b.what}`);
    assert.match(decodeURIComponent(String(grpc.headers["grpc-message"])), b.message, `gRPC, ${b.what}`);
    assert.equal(grpc.body.byteLength, 0);

    const web = await raw(url, { "content-type": `application/grpc-web+${codec}` }, b.body);
    const [trailer] = frames(web.body);
    assert.equal(trailer?.flags, 0x80, `gRPC-Web, ${b.what}`);
    assert.match(trailer?.payload.toString() ?? "", new RegExp(`grpc-status: ?${b.code}\\r\\n`));

    const connect = await raw(url, { "content-type": `application/connect+${codec}` }, b.body);
    assert.equal(connect.headers[":status"], 200);
    const [end] = frames(connect.body);
    assert.equal(end?.flags, 0x02, `Connect, ${b.what}`);
    const error = JSON.parse(end?.payload.toString() ?? "{}").error;
    assert.equal(
      error?.code,
      Code[b.code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()),
    );
    assert.match(error?.message, b.message, `Connect, ${b.what}`);
  }
});

test("compressed requests and deadlines take the same way in: served, the frames uncompressed", async () => {
  const { url } = await fx.serve();
  const compressed = await raw(
    url,
    { "content-type": "application/grpc", "grpc-encoding": "gzip", "grpc-accept-encoding": "gzip" },
    envelope(1, gzipSync(request("default"))),
    live,
  );
  const sent = frames(compressed.body);
  assert.equal(sent.length >= 2, true);
  assert.ok(
    sent.every((f) => f.flags === 0),
    "shared frames are never compressed, which every client accepts",
  );

  const grpc = createClient(StateService, createGrpcTransport({ baseUrl: url }));
  const watched = grpc.watchLock({ workspace: "default" }, { timeoutMs: 400 })[Symbol.asyncIterator]();
  assert.equal((await watched.next()).value?.kind, LockEventKind.SNAPSHOT);
  assert.equal((await watched.next()).value?.kind, LockEventKind.SNAPSHOT_COMPLETE);
  await assert.rejects(watched.next(), (e) => ConnectError.from(e).code === Code.DeadlineExceeded);
});

test("the endpoint passes the authentication point", async () => {
  const { url } = await fx.serve({
    server: {
      authenticate: async (req) => {
        if (req.headers.get("authorization") !== "Bearer good")
          throw new UnauthenticatedError("credentials required");
        assert.equal(req.path, PATH);
        assert.equal(req.kind, "rpc");
        return { method: "token", name: "watcher", token: "watcher" };
      },
    },
  });
  const refused = await raw(url, { "content-type": "application/grpc" }, envelope(0, request("default")));
  assert.equal(refused.headers["grpc-status"], String(Code.Unauthenticated));
  assert.equal(decodeURIComponent(String(refused.headers["grpc-message"])), "credentials required");
  // An error before any message still opens with the protocol's content type, which clients
  // check before they read the end of the stream: on HTTP/2 and on HTTP/1.1.
  for (const ct of ["application/connect+proto", "application/grpc-web+proto"]) {
    const h2 = await raw(url, { "content-type": ct }, envelope(0, request("default")));
    assert.equal(h2.headers[":status"], 200, ct);
    assert.equal(h2.headers["content-type"], ct, ct);
    const h1 = await fetch(url + PATH, {
      method: "POST",
      headers: { "content-type": ct },
      body: envelope(0, request("default")),
    });
    assert.equal(h1.headers.get("content-type"), ct, `${ct} over HTTP/1.1`);
    const end = Buffer.from(await h1.arrayBuffer()).toString("latin1");
    assert.match(end, ct.includes("web") ? /grpc-status: 16/ : /"code":"unauthenticated"/, ct);
  }
  const allowed = await raw(
    url,
    { "content-type": "application/grpc", authorization: "Bearer good" },
    envelope(0, request("default")),
    live,
  );
  assert.equal(frames(allowed.body).length, 2);
});

test("a watcher that stops reading holds back no one; reading again, it gets the latest status", async () => {
  const served = await fx.serve();
  const session = http2.connect(served.url);
  try {
    // No "data" listener: the stream stays paused, so its flow-control window runs out.
    const slow = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc" });
    slow.end(envelope(0, request("default")));
    await new Promise((resolve) => slow.once("response", resolve));

    const fast = client(StateService, "grpc over h2c", served.url)
      .watchLock({ workspace: "default" })
      [Symbol.asyncIterator]();
    assert.equal((await fast.next()).value?.kind, LockEventKind.SNAPSHOT);
    assert.equal((await fast.next()).value?.kind, LockEventKind.SNAPSHOT_COMPLETE);
    const locker = client(StateService, "grpc over h2c", served.url);
    const info = "i".repeat(40_000); // two events fill the 64 KiB window
    for (let i = 0; i < 6; i++) {
      await locker.lock({ workspace: "default", lock: { id: `slow-${i}`, info } });
      assert.equal((await fast.next()).value?.lock?.id, `slow-${i}`, "the reading watcher is not held up");
      await locker.unlock({ workspace: "default", lockId: `slow-${i}` });
      assert.equal((await fast.next()).value?.kind, LockEventKind.UNLOCKED);
    }

    let body = Buffer.alloc(0);
    const last = await new Promise<string>((resolve, reject) => {
      slow.on("data", (chunk: Buffer) => {
        body = Buffer.concat([body, chunk]);
        const events = frames(body).map((f) => fromBinary(WatchLockResponseSchema, f.payload));
        const end = events.at(-1);
        if (end?.kind === LockEventKind.UNLOCKED && end.lock?.id === "slow-5") resolve("slow-5");
      });
      slow.once("close", () => reject(new Error("the slow stream closed")));
    });
    assert.equal(last, "slow-5", "the slow watcher catches up with the latest status");
    assert.ok(frames(body).length <= 2 + 12, "and never gets more than every event once");
  } finally {
    session.destroy();
  }
});

test("2,000 watchers over HTTP/2 all receive a change; cancelling them frees every stream", async () => {
  const served = await fx.serve();
  const connections = Array.from({ length: 8 }, () =>
    createClient(StateService, createGrpcTransport({ baseUrl: served.url })),
  );
  const ac = new AbortController();
  const streams = Array.from({ length: 2000 }, (_, i) =>
    (connections[i % connections.length] as (typeof connections)[number])
      .watchLock({ workspace: "default" }, { signal: ac.signal })
      [Symbol.asyncIterator](),
  );
  for (const s of streams) {
    assert.equal((await s.next()).value?.kind, LockEventKind.SNAPSHOT);
    assert.equal((await s.next()).value?.kind, LockEventKind.SNAPSHOT_COMPLETE);
  }
  assert.equal(served.coordinator.stats().watchers, 2000);

  await client(StateService, "grpc over h2c", served.url).lock({
    workspace: "default",
    lock: { id: "many" },
  });
  const events = await Promise.all(streams.map((s) => s.next()));
  assert.ok(events.every((e) => e.value?.kind === LockEventKind.LOCKED && e.value.lock?.id === "many"));

  ac.abort();
  const deadline = Date.now() + 5000;
  while (served.coordinator.stats().watchers > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(served.coordinator.stats().watchers, 0, "every subscription freed");
  assert.equal(served.coordinator.stats().pollers, 0, "and the poller stopped");
});
