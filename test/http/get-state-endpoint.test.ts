/**
 * GetState answered below Connect (src/http/get-state-endpoint.ts): the same bytes Connect's
 * encoder would send, in every binary protocol over both HTTP versions; compressed responses made
 * once per state and never stale; errors, deadlines and authentication in each protocol's form;
 * and what it leaves to Connect still answered.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { request } from "undici";
import { UnauthenticatedError } from "../../src/errors.ts";
import {
  GetStateRequestSchema,
  type GetStateResponse,
  GetStateResponseSchema,
  StateService,
} from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { startProxy } from "../harness/proxy.ts";
import { bigState, client, PROTOCOLS, startRegistryFixture, text } from "../rpc/fixture.ts";
import { envelope, frames, rawH2 } from "./wire.ts";

const fx = await startRegistryFixture();
const PATH = "/tfstate.v1.StateService/GetState";

const getRequest = (workspace: string, ifNoneMatch = "") =>
  toBinary(GetStateRequestSchema, create(GetStateRequestSchema, { workspace, ifNoneMatch }));

/** One GetState over HTTP/1.1 with undici: status, headers and the raw body. */
async function rawH1(url: string, headers: Record<string, string>, body: Uint8Array) {
  const res = await request(`${url}${PATH}`, { method: "POST", headers, body });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/** What Connect's own handler answers (the JSON codec never takes the endpoint), re-encoded. */
async function viaConnect(
  url: string,
  workspace: string,
): Promise<{ message: GetStateResponse; bytes: Uint8Array }> {
  const message = await client(StateService, "connect+json over HTTP/1.1", url).getState({ workspace });
  return { message, bytes: toBinary(GetStateResponseSchema, message) };
}

test("binary GetState gets the bytes Connect's encoder gives, in every protocol over both HTTP versions", async () => {
  const { url } = await fx.serve();
  // Over 2 MiB (a varint length of 4 bytes), and within what the JSON codec carries in 4 MiB.
  const state = bigState(2 * 1024 * 1024 + 17, "endpoint");
  await client(StateService, "grpc over h2c", url).putState({ workspace: "default", state });
  const expected = await viaConnect(url, "default");
  assert.equal(expected.message.state.byteLength, state.byteLength);

  const h1 = await rawH1(url, { "content-type": "application/proto" }, getRequest("default"));
  assert.equal(h1.status, 200);
  assert.equal(h1.headers["content-type"], "application/proto");
  assert.equal(h1.headers["content-length"], String(expected.bytes.byteLength));
  assert.equal(h1.headers["content-encoding"], undefined);
  assert.ok(h1.body.equals(expected.bytes), "the Connect unary body is the canonical encoding");

  const grpc = await rawH2(
    url,
    PATH,
    { "content-type": "application/grpc" },
    envelope(0, getRequest("default")),
  );
  assert.equal(grpc.headers["content-type"], "application/grpc+proto");
  assert.equal(grpc.trailers["grpc-status"], "0");
  const [message] = frames(grpc.body);
  assert.equal(message?.flags, 0);
  assert.ok(message?.payload.equals(expected.bytes), "the gRPC message is the canonical encoding");

  const web = await rawH1(
    url,
    { "content-type": "application/grpc-web+proto" },
    envelope(0, getRequest("default")),
  );
  assert.equal(web.headers["content-type"], "application/grpc-web+proto");
  assert.equal(web.headers["content-length"], String(web.body.byteLength));
  const [webMessage, trailer] = frames(web.body);
  assert.ok(webMessage?.payload.equals(expected.bytes));
  assert.equal(trailer?.flags, 0x80);
  assert.match(trailer?.payload.toString() ?? "", /grpc-status: ?0/);

  const h1Connect = createClient(
    StateService,
    createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: true }),
  );
  for (const [name, c] of [
    ...PROTOCOLS.map((p) => [p, client(StateService, p, url)] as const),
    ["connect+proto over HTTP/1.1", h1Connect] as const,
  ]) {
    const got = await c.getState({ workspace: "default" });
    assert.ok(Buffer.from(got.state).equals(state), `${name}: state bytes`);
    assert.ok(
      Buffer.from(toBinary(GetStateResponseSchema, got)).equals(expected.bytes),
      `${name}: the whole message`,
    );
  }

  // Not modified: metadata only, no state bytes.
  const digest = expected.message.metadata?.digest ?? "";
  const same = await rawH1(url, { "content-type": "application/proto" }, getRequest("default", digest));
  const notModified = fromBinary(GetStateResponseSchema, same.body);
  assert.equal(notModified.notModified, true);
  assert.equal(notModified.state.byteLength, 0);
  assert.equal(notModified.metadata?.digest, digest);
});

test("a client that accepts compression gets the compressed message, and never a stale one", async () => {
  const { url } = await fx.serve();
  const c = client(StateService, "grpc over h2c", url);
  const first = bigState(512 * 1024, "one");
  await c.putState({ workspace: "default", state: first });
  const expected = (await viaConnect(url, "default")).bytes;

  const gz = await rawH1(
    url,
    { "content-type": "application/proto", "accept-encoding": "gzip" },
    getRequest("default"),
  );
  assert.equal(gz.headers["content-encoding"], "gzip");
  // The filler is random hex: about 4 bits of information per byte.
  assert.ok(gz.body.byteLength < expected.byteLength * 0.7, `compressed to ${gz.body.byteLength} bytes`);
  assert.ok(gunzipSync(gz.body).equals(expected));

  // The same state, asked again in another protocol: the same compressed message.
  const grpc = await rawH2(
    url,
    PATH,
    { "content-type": "application/grpc", "grpc-accept-encoding": "gzip" },
    envelope(0, getRequest("default")),
  );
  assert.equal(grpc.headers["grpc-encoding"], "gzip");
  const [message] = frames(grpc.body);
  assert.equal(message?.flags, 1, "the envelope is flagged compressed");
  assert.ok(message?.payload.equals(gz.body));

  const br = await rawH1(
    url,
    { "content-type": "application/proto", "accept-encoding": "br" },
    getRequest("default"),
  );
  assert.equal(br.headers["content-encoding"], "br");
  assert.ok(brotliDecompressSync(br.body).equals(expected));

  // New content of the same size: the next answer carries it, whatever was compressed before.
  const second = bigState(512 * 1024, "two");
  await c.putState({ workspace: "default", state: second });
  const again = await rawH1(
    url,
    { "content-type": "application/proto", "accept-encoding": "gzip" },
    getRequest("default"),
  );
  const decoded = fromBinary(GetStateResponseSchema, gunzipSync(again.body));
  assert.ok(Buffer.from(decoded.state).equals(second));
  assert.ok(gunzipSync(again.body).equals((await viaConnect(url, "default")).bytes));

  // Under the compression threshold, sent as it is.
  await c.putState({ workspace: "small", state: text('{"version":4}') });
  const small = await rawH1(
    url,
    { "content-type": "application/proto", "accept-encoding": "gzip" },
    getRequest("small"),
  );
  assert.equal(small.headers["content-encoding"], undefined);
  assert.equal(fromBinary(GetStateResponseSchema, small.body).state.byteLength, 13);
});

test("errors come in each protocol's form: Connect status and JSON, gRPC status, gRPC-Web trailer frame", async () => {
  const { url } = await fx.serve({ server: { maxMessageBytes: 64 * 1024 } });

  const missing = await rawH1(url, { "content-type": "application/proto" }, getRequest("nothing-here"));
  assert.equal(missing.status, 404);
  assert.equal(missing.headers["content-type"], "application/json");
  const json = JSON.parse(missing.body.toString()) as { code: string; message: string };
  assert.equal(json.code, "not_found");
  assert.match(json.message, /"nothing-here" has no state/);

  const grpc = await rawH2(
    url,
    PATH,
    { "content-type": "application/grpc" },
    envelope(0, getRequest("nothing-here")),
  );
  assert.equal(grpc.trailers["grpc-status"] ?? grpc.headers["grpc-status"], String(Code.NotFound));
  assert.equal(grpc.body.byteLength, 0);

  const web = await rawH2(
    url,
    PATH,
    { "content-type": "application/grpc-web+proto" },
    envelope(0, getRequest("nothing-here")),
  );
  const [trailer] = frames(web.body);
  assert.equal(trailer?.flags, 0x80);
  assert.match(trailer?.payload.toString() ?? "", new RegExp(`grpc-status: ?${Code.NotFound}`));

  const grpcClient = createClient(StateService, createGrpcTransport({ baseUrl: url }));
  const cases: {
    what: string;
    headers: Record<string, string>;
    body: Uint8Array;
    code: Code;
    message: RegExp;
  }[] = [
    {
      what: "a bad workspace name",
      headers: {},
      body: envelope(0, getRequest("bad\tname")),
      code: Code.InvalidArgument,
      message: /control character/,
    },
    {
      what: "bytes that are no GetStateRequest",
      headers: {},
      body: envelope(0, Buffer.from([0x0a, 0xff, 0xff])),
      code: Code.InvalidArgument,
      message: /cannot decode the GetState request/,
    },
    {
      what: "a compressed flag without an encoding",
      headers: {},
      body: envelope(1, gzipSync(getRequest("default"))),
      code: Code.InvalidArgument,
      message: /compressed, but the request names no encoding/,
    },
    {
      what: "a request over the message limit",
      headers: {},
      body: envelope(0, Buffer.alloc(64 * 1024 + 1)),
      code: Code.ResourceExhausted,
      message: /larger than configured readMaxBytes 65536/,
    },
    {
      what: "a malformed timeout",
      headers: { "grpc-timeout": "soon" },
      body: envelope(0, getRequest("default")),
      code: Code.InvalidArgument,
      message: /invalid grpc timeout value: soon/,
    },
  ];
  for (const c of cases) {
    const got = await rawH2(url, PATH, { "content-type": "application/grpc", ...c.headers }, c.body);
    assert.equal(got.trailers["grpc-status"] ?? got.headers["grpc-status"], String(c.code), c.what);
    assert.match(
      decodeURIComponent(String(got.trailers["grpc-message"] ?? got.headers["grpc-message"])),
      c.message,
      c.what,
    );
  }
  // And through a real client, the detail-less errors decode as usual.
  await assert.rejects(grpcClient.getState({ workspace: "nothing-here" }), (e: unknown) => {
    assert.equal(ConnectError.from(e).code, Code.NotFound);
    return true;
  });
});

test("the call's deadline bounds its registry requests: DEADLINE_EXCEEDED in time", async () => {
  const proxy = await startProxy(fx.registry.url);
  try {
    const { url } = await fx.serve({
      backend: { repository: `${proxy.host}/tfstate/deadline`, retry: { maxAttempts: 1 } },
    });
    await client(StateService, "grpc over h2c", url).putState({ workspace: "default", state: text("{}") });
    proxy.fault({ method: "GET", path: /\/manifests\/state-default$/, action: { kind: "delay", ms: 3000 } });
    for (const [name, c] of [
      ["gRPC", createClient(StateService, createGrpcTransport({ baseUrl: url }))],
      [
        "Connect over HTTP/1.1",
        createClient(
          StateService,
          createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: true }),
        ),
      ],
    ] as const) {
      const started = Date.now();
      await assert.rejects(c.getState({ workspace: "default" }, { timeoutMs: 300 }), (e: unknown) => {
        assert.equal(Code[ConnectError.from(e).code], Code[Code.DeadlineExceeded], String(e));
        return true;
      });
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 2000, `${name}: took ${took} ms`);
    }
  } finally {
    await proxy.stop();
  }
});

test("authentication is checked before the request is read, as for every RPC", async () => {
  const { url } = await fx.serve({
    server: {
      authenticate: async (req) => {
        if (req.headers.get("authorization") !== "Bearer let-me-in")
          throw new UnauthenticatedError("credentials required");
        assert.equal(req.path, PATH);
        assert.equal(req.kind, "rpc");
        return { method: "token", name: "ci" };
      },
    },
  });
  const refused = await rawH1(url, { "content-type": "application/proto" }, getRequest("default"));
  assert.equal(refused.status, 401);
  assert.match(refused.body.toString(), /credentials required/);
  const grpc = await rawH2(
    url,
    PATH,
    { "content-type": "application/grpc" },
    envelope(0, getRequest("default")),
  );
  assert.equal(grpc.trailers["grpc-status"] ?? grpc.headers["grpc-status"], String(Code.Unauthenticated));
  const allowed = await rawH1(
    url,
    { "content-type": "application/proto", authorization: "Bearer let-me-in" },
    getRequest("default"),
  );
  assert.equal(allowed.status, 404, "let in, and the workspace has no state");
});

test("what the endpoint leaves to Connect is still answered: JSON, Connect GET, compressed requests", async () => {
  const { url } = await fx.serve();
  const state = bigState(8 * 1024, "fallback");
  await client(StateService, "grpc over h2c", url).putState({ workspace: "default", state });
  const clients = {
    json: client(StateService, "connect+json over HTTP/1.1", url),
    get: createClient(
      StateService,
      createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: true, useHttpGet: true }),
    ),
    "gzip request": createClient(
      StateService,
      createGrpcTransport({
        baseUrl: url,
        sendCompression: {
          name: "gzip",
          compress: async (b) => gzipSync(b),
          decompress: async (b) => gunzipSync(b),
        },
        compressMinBytes: 0,
      }),
    ),
  };
  for (const [name, c] of Object.entries(clients)) {
    const got = await c.getState({ workspace: "default" });
    assert.ok(Buffer.from(got.state).equals(state), name);
  }
});
