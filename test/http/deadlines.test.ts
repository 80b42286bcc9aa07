/**
 * Call deadlines in every form clients send them, on every way an RPC is served: the GetState
 * endpoint below Connect (binary requests), Connect's own handlers (JSON, every other method, and
 * WatchLock with a deadline, over HTTP/1.1 and HTTP/2), for each `grpc-timeout` unit (n, u, m, S,
 * M, H) and `connect-timeout-ms`. A generous deadline lets the call succeed; a short one against a
 * registry made slow ends it with DEADLINE_EXCEEDED at the deadline, never INTERNAL. grpc-go sends
 * its deadlines in `u` or `n` (a 10 s context is "9999958u"), which used to fail every call.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, test } from "node:test";
import { create, fromBinary, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  GetStateRequestSchema,
  GetStateResponseSchema,
  LockEventKind,
  PutStateRequestSchema,
  StateService,
  WatchLockRequestSchema,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { startProxy } from "../harness/proxy.ts";
import { startRegistryFixture, text } from "../rpc/fixture.ts";
import { envelope, frames, rawH2 } from "./wire.ts";

const fx = await startRegistryFixture();
const proxy = await startProxy(fx.registry.url);
after(() => proxy.stop());
const served = await fx.serve({
  backend: { repository: `${proxy.host}/tfstate/deadlines`, retry: { maxAttempts: 1 } },
});
const { url } = served;
const STATE = text('{"version":4,"serial":1,"lineage":"deadlines"}');
await createClient(StateService, createGrpcTransport({ baseUrl: url })).putState({
  workspace: "default",
  state: STATE,
});

const GET_STATE = "/tfstate.v1.StateService/GetState";
const PUT_STATE = "/tfstate.v1.StateService/PutState";
const WATCH_LOCK = "/tfstate.v1.StateService/WatchLock";
/** How long the slow registry holds each manifest request. */
const SLOW_MS = 3000;

interface Outcome {
  /** 0 for success. */
  code: number;
  message: string;
}

type Timeout = { "grpc-timeout": string } | { "connect-timeout-ms": string };

const getStateBinary = toBinary(
  GetStateRequestSchema,
  create(GetStateRequestSchema, { workspace: "default" }),
);

/** The ways a unary call is served, each sent with explicit headers so any timeout unit can be used. */
const UNARY_PATHS: {
  name: string;
  grpcTimeout: boolean;
  call: (timeout: Timeout) => Promise<Outcome>;
}[] = [
  {
    name: "GetState endpoint, gRPC over h2c",
    grpcTimeout: true,
    call: (t) => grpcH2(GET_STATE, { "content-type": "application/grpc", ...t }, getStateBinary),
  },
  {
    name: "GetState endpoint, gRPC-Web over HTTP/1.1",
    grpcTimeout: true,
    call: (t) => grpcWebH1(GET_STATE, { ...t }, getStateBinary),
  },
  {
    name: "GetState endpoint, Connect binary over HTTP/1.1",
    grpcTimeout: false,
    call: (t) => connectH1(GET_STATE, { "content-type": "application/proto", ...t }, getStateBinary),
  },
  {
    name: "Connect handler, GetState as gRPC JSON over h2c",
    grpcTimeout: true,
    call: (t) =>
      grpcH2(
        GET_STATE,
        { "content-type": "application/grpc+json", ...t },
        Buffer.from(
          toJsonString(GetStateRequestSchema, create(GetStateRequestSchema, { workspace: "default" })),
        ),
      ),
  },
  {
    name: "Connect handler, PutState as gRPC over h2c",
    grpcTimeout: true,
    call: (t) =>
      grpcH2(
        PUT_STATE,
        { "content-type": "application/grpc", ...t },
        toBinary(PutStateRequestSchema, create(PutStateRequestSchema, { workspace: "put", state: STATE })),
      ),
  },
  {
    name: "Connect handler, GetState as Connect JSON over HTTP/1.1",
    grpcTimeout: false,
    call: (t) =>
      connectH1(
        GET_STATE,
        { "content-type": "application/json", ...t },
        Buffer.from(
          toJsonString(GetStateRequestSchema, create(GetStateRequestSchema, { workspace: "default" })),
        ),
      ),
  },
  {
    name: "Connect handler, PutState as gRPC-Web over HTTP/1.1",
    grpcTimeout: true,
    call: (t) =>
      grpcWebH1(
        PUT_STATE,
        { ...t },
        toBinary(PutStateRequestSchema, create(PutStateRequestSchema, { workspace: "put", state: STATE })),
      ),
  },
];

/** Generous deadlines in each unit (n cannot be: 8 digits of nanoseconds are 0.1 s at most). */
const GENEROUS_GRPC = ["99999999u", "60000m", "60S", "1M", "1H", "99999999H"];
const GENEROUS_CONNECT = ["60000", "9999999999"];
/** Short deadlines, all well under SLOW_MS (n and u ones that are not whole milliseconds). */
const SHORT_GRPC = ["50000001n", "400001u", "400m", "1S"];
const SHORT_CONNECT = ["400"];

test("a generous deadline in every unit lets every kind of unary call succeed", async () => {
  proxy.clearFaults();
  for (const path of UNARY_PATHS) {
    const values = path.grpcTimeout ? GENEROUS_GRPC : GENEROUS_CONNECT;
    for (const value of values) {
      const t: Timeout = path.grpcTimeout ? { "grpc-timeout": value } : { "connect-timeout-ms": value };
      const outcome = await path.call(t);
      assert.deepEqual(outcome, { code: 0, message: "" }, `${path.name}, ${JSON.stringify(t)}`);
    }
  }
});

test("the largest nanosecond deadline (0.1 s) is honoured: success or DEADLINE_EXCEEDED, never INTERNAL", async () => {
  proxy.clearFaults();
  for (const path of UNARY_PATHS.filter((p) => p.grpcTimeout)) {
    const outcome = await path.call({ "grpc-timeout": "99999999n" });
    assert.ok(
      outcome.code === 0 || outcome.code === Code.DeadlineExceeded,
      `${path.name}: ${Code[outcome.code]} ${outcome.message}`,
    );
  }
});

test("a short deadline in every unit ends every kind of unary call with DEADLINE_EXCEEDED, in time", async () => {
  proxy.clearFaults();
  proxy.fault({ path: /\/manifests\//, action: { kind: "delay", ms: SLOW_MS } });
  try {
    for (const path of UNARY_PATHS) {
      for (const value of path.grpcTimeout ? SHORT_GRPC : SHORT_CONNECT) {
        const t: Timeout = path.grpcTimeout ? { "grpc-timeout": value } : { "connect-timeout-ms": value };
        const started = performance.now();
        const outcome = await path.call(t);
        const took = performance.now() - started;
        const what = `${path.name}, ${JSON.stringify(t)}: ${Code[outcome.code]} ${outcome.message}`;
        assert.equal(outcome.code, Code.DeadlineExceeded, what);
        assert.ok(took < SLOW_MS - 500, `${what}: answered after ${Math.round(took)} ms`);
      }
    }
  } finally {
    proxy.clearFaults();
  }
});

test("real clients: connect-node's deadlines over every protocol end slow calls with DEADLINE_EXCEEDED", async () => {
  proxy.clearFaults();
  const transports = [
    ["Connect JSON over HTTP/1.1", createConnectTransport({ baseUrl: url, httpVersion: "1.1" })],
    [
      "Connect binary over HTTP/2",
      createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }),
    ],
    ["Connect GET", createConnectTransport({ baseUrl: url, httpVersion: "1.1", useHttpGet: true })],
    ["gRPC", createGrpcTransport({ baseUrl: url })],
    ["gRPC-Web over HTTP/1.1", createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })],
  ] as const;
  for (const [name, transport] of transports) {
    const c = createClient(StateService, transport);
    const ok = await c.getState({ workspace: "default" }, { timeoutMs: 60_000 });
    assert.equal(ok.state.byteLength, STATE.byteLength, name);
  }
  proxy.fault({ path: /\/manifests\//, action: { kind: "delay", ms: SLOW_MS } });
  try {
    for (const [name, transport] of transports) {
      const c = createClient(StateService, transport);
      await assert.rejects(c.getState({ workspace: "default" }, { timeoutMs: 400 }), (e: unknown) => {
        assert.equal(Code[ConnectError.from(e).code], Code[Code.DeadlineExceeded], `${name}: ${String(e)}`);
        return true;
      });
    }
  } finally {
    proxy.clearFaults();
  }
});

test("WatchLock with a deadline in any unit, over HTTP/2 and HTTP/1.1, streams until it, then DEADLINE_EXCEEDED", async () => {
  proxy.clearFaults();
  const request = envelope(
    0,
    toBinary(WatchLockRequestSchema, create(WatchLockRequestSchema, { workspace: "default" })),
  );
  for (const value of ["99999999n", "700001u", "700m", "1S"]) {
    const started = performance.now();
    const answer = await rawH2(
      url,
      WATCH_LOCK,
      { "content-type": "application/grpc", "grpc-timeout": value },
      request,
    );
    const took = performance.now() - started;
    const status = answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
    assert.equal(
      status,
      String(Code.DeadlineExceeded),
      `grpc-timeout ${value}: ${JSON.stringify(answer.trailers)}`,
    );
    assert.ok(took < 5000, `grpc-timeout ${value}: ended after ${Math.round(took)} ms`);
  }
  for (const [name, transport] of [
    ["gRPC over h2c", createGrpcTransport({ baseUrl: url })],
    ["Connect JSON over HTTP/1.1", createConnectTransport({ baseUrl: url, httpVersion: "1.1" })],
    ["gRPC-Web over HTTP/1.1", createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })],
  ] as const) {
    const c = createClient(StateService, transport);
    const watched = c.watchLock({ workspace: "default" }, { timeoutMs: 1500 })[Symbol.asyncIterator]();
    assert.equal((await watched.next()).value?.kind, LockEventKind.SNAPSHOT, name);
    assert.equal((await watched.next()).value?.kind, LockEventKind.SNAPSHOT_COMPLETE, name);
    await assert.rejects(watched.next(), (e) => {
      assert.equal(Code[ConnectError.from(e).code], Code[Code.DeadlineExceeded], `${name}: ${String(e)}`);
      return true;
    });
  }
  // A deadline of hours is a stream that lives on: the snapshot comes, and nothing ends it early.
  const long = await rawH2(
    url,
    WATCH_LOCK,
    { "content-type": "application/grpc", "grpc-timeout": "2H" },
    request,
    (body) => frames(body).length >= 2,
  );
  assert.equal(frames(long.body).length, 2);
});

// ---- raw calls with explicit headers ----

function grpcStatus(headers: Record<string, unknown>): Outcome | undefined {
  const status = headers["grpc-status"];
  if (status === undefined) return undefined;
  return { code: Number(status), message: decodeURIComponent(String(headers["grpc-message"] ?? "")) };
}

async function grpcH2(path: string, headers: Record<string, string>, message: Uint8Array): Promise<Outcome> {
  const answer = await rawH2(url, path, headers, envelope(0, message));
  const outcome = grpcStatus(answer.trailers) ?? grpcStatus(answer.headers);
  assert.ok(outcome, `no grpc-status from ${path}: ${JSON.stringify(answer.headers)}`);
  if (outcome.code === 0 && path === GET_STATE && headers["content-type"] === "application/grpc") {
    const [frame] = frames(answer.body);
    assert.ok(frame);
    assert.equal(fromBinary(GetStateResponseSchema, frame.payload).state.byteLength, STATE.byteLength);
  }
  return outcome;
}

interface H1Answer {
  status: number;
  body: Buffer;
}

function h1(path: string, headers: Record<string, string>, body: Uint8Array): Promise<H1Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method: "POST", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function grpcWebH1(
  path: string,
  headers: Record<string, string>,
  message: Uint8Array,
): Promise<Outcome> {
  const res = await h1(
    path,
    { "content-type": "application/grpc-web+proto", ...headers },
    envelope(0, message),
  );
  assert.equal(res.status, 200);
  const trailer = frames(res.body).find((f) => f.flags === 0x80);
  assert.ok(trailer, `a gRPC-Web trailer frame from ${path}`);
  const fields: Record<string, string> = {};
  for (const line of trailer.payload.toString().split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) fields[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  const outcome = grpcStatus(fields);
  assert.ok(outcome);
  return outcome;
}

async function connectH1(path: string, headers: Record<string, string>, body: Uint8Array): Promise<Outcome> {
  const res = await h1(path, headers, body);
  if (res.status === 200) return { code: 0, message: "" };
  const error = JSON.parse(res.body.toString()) as { code: string; message?: string };
  const code = Object.entries(Code).find(
    ([name]) => name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() === error.code,
  )?.[1];
  return { code: typeof code === "number" ? code : -1, message: error.message ?? "" };
}
