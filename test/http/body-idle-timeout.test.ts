/**
 * The request body idle timeout: a client that stops sending its body while the server waits for
 * it gets an answer that says so (408 for plain HTTP, DEADLINE_EXCEEDED for RPCs, in each
 * protocol's form), on HTTP/1.1 and HTTP/2 alike, including the bare HTTP/2 streams of the
 * WatchLock endpoint, and the connection or stream is freed. A body that keeps coming, however
 * slowly, and a body held back because the server itself is busy, are never cut.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { test } from "node:test";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  GetStateRequestSchema,
  PutStateRequestSchema,
  StateService,
  type UploadStateRequest,
  UploadStateRequestSchema,
  WatchLockRequestSchema,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { runCli } from "../cli/cli-process.ts";
import { startProxy } from "../harness/proxy.ts";
import { bigState, startRegistryFixture } from "../rpc/fixture.ts";
import { serveOnDisk } from "./disk-server.ts";
import { assertAlive, bodyOf, exchange, statusOf } from "./raw-socket.ts";
import { envelope } from "./wire.ts";

const IDLE_MS = 1000;
/** The answer comes at the idle timeout; a loaded machine may add a lot to it. */
const ANSWER_BY_MS = 8000;
const srv = await serveOnDisk({ bodyIdleTimeoutMs: IDLE_MS });
const says =
  /no request body bytes arrived for 1 s while the server waited for them \(the body idle timeout\)/;

const PUT_STATE = "/tfstate.v1.StateService/PutState";
const UPLOAD_STATE = "/tfstate.v1.StateService/UploadState";
const GET_STATE = "/tfstate.v1.StateService/GetState";
const WATCH_LOCK = "/tfstate.v1.StateService/WatchLock";

const uploadHeader = (workspace: string) =>
  toBinary(
    UploadStateRequestSchema,
    create(UploadStateRequestSchema, { payload: { case: "header", value: { workspace } } }),
  );

function assertTimely(ms: number): void {
  assert.ok(ms >= IDLE_MS - 100 && ms < ANSWER_BY_MS, `answered after ${Math.round(ms)} ms`);
}

test("HTTP/1.1, Terraform http backend: a body that stops half-way gets 408 and the connection closed", async () => {
  const r = await exchange(
    srv.port,
    ["POST /terraform/state/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", '{"version":4,'],
    15_000,
  );
  assert.equal(statusOf(r.text), 408, r.text);
  assert.match(r.text, /\r\nconnection: close\r\n/i);
  assert.match(bodyOf(r.text), says);
  assert.ok(r.closed, "the connection is closed");
  assertTimely(r.ms);
  await assertAlive(srv.url);
});

test("HTTP/1.1, Terraform http backend: a chunked body stalled inside a chunk gets 408", async () => {
  const r = await exchange(
    srv.port,
    [
      "PUT /terraform/state/stalled HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      "40\r\n",
      '{"version":4,',
    ],
    15_000,
  );
  assert.equal(statusOf(r.text), 408, r.text);
  assert.match(bodyOf(r.text), says);
  assert.ok(r.closed);
  await assertAlive(srv.url);
});

test("HTTP/1.1, Connect unary: DEADLINE_EXCEEDED in Connect's form, the connection closed", async () => {
  const json = toJsonString(PutStateRequestSchema, create(PutStateRequestSchema, { workspace: "stalled" }));
  const r = await exchange(
    srv.port,
    [
      `POST ${PUT_STATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${json.length + 50}\r\n\r\n`,
      json,
    ],
    15_000,
  );
  assert.equal(statusOf(r.text), 504, r.text);
  const error = JSON.parse(bodyOf(r.text)) as { code: string; message: string };
  assert.equal(error.code, "deadline_exceeded");
  assert.match(error.message, says);
  assert.ok(r.closed, "the connection is closed");
  assertTimely(r.ms);
  await assertAlive(srv.url);
});

test("HTTP/1.1, gRPC-Web UploadState: a stream that stops after its header ends with DEADLINE_EXCEEDED", async () => {
  const first = envelope(0, uploadHeader("stalled"));
  const r = await exchange(
    srv.port,
    [
      `POST ${UPLOAD_STATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\nTransfer-Encoding: chunked\r\n\r\n`,
      `${first.byteLength.toString(16)}\r\n`,
      first,
      "\r\n",
    ],
    15_000,
  );
  assert.equal(statusOf(r.text), 200, r.text);
  assert.match(r.text, /grpc-status: ?4\r\n/);
  assert.match(r.text, /no%20request%20body%20bytes|no request body bytes/);
  assert.ok(r.closed, "the connection is closed");
  assertTimely(r.ms);
  await assertAlive(srv.url);
});

interface H2Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** The stream closed (answered and reset, or ended both ways). */
  closedMs: number;
  answeredMs: number;
}

/** Opens a stream on `session`, writes `bytes` and never ends the request; resolves once the stream closes. */
function stalledStream(
  session: http2.ClientHttp2Session,
  path: string,
  headers: Record<string, string>,
  bytes: Uint8Array,
): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = session.request({ ":method": "POST", ":path": path, ...headers }, { endStream: false });
    const answer: H2Answer = { headers: {}, trailers: {}, body: Buffer.alloc(0), closedMs: 0, answeredMs: 0 };
    req.on("response", (h) => {
      answer.headers = h;
      answer.answeredMs = performance.now() - started;
    });
    req.on("trailers", (t) => {
      answer.trailers = t;
    });
    req.on("data", (c: Buffer) => {
      answer.body = Buffer.concat([answer.body, c]);
    });
    req.on("error", () => {});
    req.on("close", () => {
      answer.closedMs = performance.now() - started;
      resolve(answer);
    });
    const timer = setTimeout(() => reject(new Error(`the stream to ${path} never closed`)), 15_000);
    req.on("close", () => clearTimeout(timer));
    req.write(bytes);
  });
}

/** A request on a session that served a stalled stream: the session itself is still fine. */
async function assertSessionServes(session: http2.ClientHttp2Session): Promise<void> {
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ":method": "GET", ":path": "/healthz" });
    req.on("response", (h) => resolve(Number(h[":status"])));
    req.on("error", reject);
    req.resume();
  });
  assert.equal(status, 200);
}

/** grpc-message is percent-encoded. */
const grpcMessage = (h: http2.IncomingHttpHeaders) => decodeURIComponent(String(h["grpc-message"] ?? ""));

test("HTTP/2, every kind of call: a stalled body ends the call with its protocol's error and frees the stream", async () => {
  const session = http2.connect(srv.url);
  try {
    const grpc = { "content-type": "application/grpc" };
    const [upload, getState, watch, connectUnary, terraform] = await Promise.all([
      // Connect's handler, client streaming: the header message, then nothing.
      stalledStream(session, UPLOAD_STATE, grpc, envelope(0, uploadHeader("stalled"))),
      // The GetState endpoint below Connect: half an envelope.
      stalledStream(
        session,
        GET_STATE,
        grpc,
        envelope(
          0,
          toBinary(GetStateRequestSchema, create(GetStateRequestSchema, { workspace: "x" })),
        ).subarray(0, 4),
      ),
      // The WatchLock endpoint on bare streams: half an envelope.
      stalledStream(
        session,
        WATCH_LOCK,
        grpc,
        envelope(
          0,
          toBinary(WatchLockRequestSchema, create(WatchLockRequestSchema, { workspace: "stalled" })),
        ).subarray(0, 3),
      ),
      // Connect unary through Node's request/response objects.
      stalledStream(
        session,
        PUT_STATE,
        { "content-type": "application/json", "content-length": "200" },
        Buffer.from('{"workspace":'),
      ),
      // A plain HTTP route over h2c.
      stalledStream(session, "/terraform/state/stalled", {}, Buffer.from('{"version":')),
    ]);
    for (const [name, a] of [
      ["UploadState", upload],
      ["GetState", getState],
      ["WatchLock", watch],
    ] as const) {
      const status = a.trailers["grpc-status"] ?? a.headers["grpc-status"];
      assert.equal(status, String(Code.DeadlineExceeded), `${name}: ${JSON.stringify(a)}`);
      assert.match(grpcMessage(a.trailers["grpc-message"] ? a.trailers : a.headers), says, name);
      assertTimely(a.answeredMs);
      assert.ok(a.closedMs < ANSWER_BY_MS, `${name}: the stream is freed (${Math.round(a.closedMs)} ms)`);
    }
    assert.equal(connectUnary.headers[":status"], 504);
    const error = JSON.parse(connectUnary.body.toString()) as { code: string; message: string };
    assert.equal(error.code, "deadline_exceeded");
    assert.match(error.message, says);
    assert.equal(terraform.headers[":status"], 408);
    assert.match(terraform.body.toString(), says);
    assert.equal(srv.coordinator.stats().watchers, 0, "the stalled watch subscribed to nothing");
    await assertSessionServes(session);
  } finally {
    session.close();
  }
  await assertAlive(srv.url);
});

test("a body that keeps coming, slower than the idle timeout in total, is served", async () => {
  const state = '{"version":4,"serial":1,"lineage":"slow","outputs":{},"resources":[]}';
  const steps = [
    `POST /terraform/state/slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${state.length}\r\n\r\n`,
  ];
  const drip: (string | { pauseMs: number })[] = [];
  for (let i = 0; i < state.length; i += 10) drip.push(state.slice(i, i + 10), { pauseMs: 350 });
  const r = await exchange(srv.port, [...steps, ...drip], 15_000);
  assert.ok(r.ms > 2 * IDLE_MS, `the body took ${Math.round(r.ms)} ms`);
  assert.equal(statusOf(r.text), 200, r.text);
});

test("an upload held back because the registry is slow is not timed out (only the server's waiting counts)", async () => {
  const fx = await startRegistryFixture();
  const proxy = await startProxy(fx.registry.url);
  try {
    const served = await fx.serve({
      server: { bodyIdleTimeoutMs: IDLE_MS },
      backend: { repository: `${proxy.host}/tfstate/idle-${Date.now()}` },
    });
    for (const [name, transport] of [
      ["gRPC over h2c", createGrpcTransport({ baseUrl: served.url })],
      ["gRPC-Web over HTTP/1.1", createGrpcWebTransport({ baseUrl: served.url, httpVersion: "1.1" })],
    ] as const) {
      const c = createClient(StateService, transport);
      const state = bigState(24 * 1024 * 1024, name);
      // Each blob chunk the server pushes waits 2.5 times the idle timeout: the server stops
      // reading the body meanwhile, and flow control holds the client back.
      proxy.clearFaults();
      proxy.fault({
        method: "PATCH",
        path: /\/blobs\/uploads\//,
        times: 2,
        action: { kind: "delay", ms: 2.5 * IDLE_MS },
      });
      const started = performance.now();
      const res = await c.uploadState(chunks(state, "slow-registry"));
      assert.equal(Number(res.metadata?.sizeBytes), state.byteLength, name);
      const took = performance.now() - started;
      assert.ok(took > 2.5 * IDLE_MS, `${name}: the registry held the upload for ${Math.round(took)} ms`);
      const patches = proxy.requests.filter((r) => r.method === "PATCH");
      assert.ok(patches.length >= 2, `${name}: the state went up in chunks (${patches.length} PATCH)`);
      proxy.clear();
    }
  } finally {
    proxy.clearFaults();
    await proxy.stop();
  }
});

test("--body-idle-timeout sets the timeout of the CLI's server", async () => {
  const run = await runCli([
    "--listen",
    "127.0.0.1:0",
    "--repository",
    "oci-layout:./data",
    "--body-idle-timeout",
    "1500ms",
  ]);
  const url = String((await run.waitForLog("listening")).url);
  const r = await exchange(
    Number(new URL(url).port),
    ["PUT /terraform/state/cli HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\n", "{"],
    15_000,
  );
  assert.equal(statusOf(r.text), 408, r.text);
  assert.match(bodyOf(r.text), /no request body bytes arrived for 1\.5 s/);
  assert.ok(r.ms >= 1400, `answered after ${Math.round(r.ms)} ms`);
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0);

  const refused = await runCli(["--repository", "oci-layout:./data", "--body-idle-timeout", "0"]);
  assert.equal((await refused.exited).code, 2);
  assert.match(refused.stderr(), /invalid --body-idle-timeout "0": expected a duration longer than 0/);
});

async function* chunks(state: Uint8Array, workspace: string): AsyncIterable<UploadStateRequest> {
  yield create(UploadStateRequestSchema, {
    payload: { case: "header", value: { workspace, sizeBytes: BigInt(state.byteLength) } },
  });
  for (let at = 0; at < state.byteLength; at += 1024 * 1024) {
    yield create(UploadStateRequestSchema, {
      payload: { case: "chunk", value: state.subarray(at, at + 1024 * 1024) },
    });
  }
}
