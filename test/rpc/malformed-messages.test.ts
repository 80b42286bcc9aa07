/**
 * A request message the server cannot decode is the client's mistake: INVALID_ARGUMENT (HTTP 400
 * in the Connect protocol) with a message naming the problem, never INTERNAL / 500. Checked for
 * unary and streaming methods, Connect, gRPC and gRPC-Web, binary and JSON, POST and Connect GET,
 * compressed and not, on Connect's handlers and on the endpoints below Connect.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { UnauthenticatedError } from "../../src/errors.ts";
import { UploadStateRequestSchema } from "../../src/gen/tfstate/v1/state_service_pb.ts";
import { serveOnDisk } from "../http/disk-server.ts";
import { assertAlive } from "../http/raw-socket.ts";
import { envelope, frames, rawH2 } from "../http/wire.ts";

const srv = await serveOnDisk();
/** Not a protobuf message: field 1 with wire type 7, which does not exist. */
const GARBAGE = Buffer.from([0x0f, 0x01, 0x02]);
const SERVICE = "/tfstate.v1.StateService";

interface Outcome {
  code: number;
  message: string;
  /** The HTTP status (Connect unary), else 200. */
  status: number;
}

function h1(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Uint8Array,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const CODES: Record<string, number> = {
  invalid_argument: Code.InvalidArgument,
  internal: Code.Internal,
  unauthenticated: Code.Unauthenticated,
  unknown: Code.Unknown,
};

async function connectUnary(url: string, method: string, path: string, headers = {}, body?: Uint8Array) {
  const res = await h1(url, method, path, headers, body);
  const error = JSON.parse(res.body.toString()) as { code: string; message: string };
  return { code: CODES[error.code] ?? -1, message: error.message, status: res.status } satisfies Outcome;
}

/** The end-of-stream message of a Connect streaming response. */
function connectEndStream(body: Buffer): Outcome {
  const end = frames(body).find((f) => f.flags === 0x02);
  assert.ok(end, "an end-of-stream message");
  const { error } = JSON.parse(end.payload.toString()) as { error?: { code: string; message: string } };
  assert.ok(error, "the stream ended with an error");
  return { code: CODES[error.code] ?? -1, message: error.message, status: 200 };
}

function grpcTrailers(trailers: Record<string, unknown>, headers: Record<string, unknown>): Outcome {
  const status = trailers["grpc-status"] ?? headers["grpc-status"];
  const message = trailers["grpc-message"] ?? headers["grpc-message"] ?? "";
  return { code: Number(status), message: decodeURIComponent(String(message)), status: 200 };
}

function grpcWebTrailer(body: Buffer): Outcome {
  const trailer = frames(body).find((f) => f.flags === 0x80);
  assert.ok(trailer, "a gRPC-Web trailer frame");
  const fields: Record<string, string> = {};
  for (const line of trailer.payload.toString().split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) fields[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return grpcTrailers(fields, {});
}

const decodeError = (method: string) => new RegExp(`^cannot decode the ${method} request: .+`);

function assertInvalid(outcome: Outcome, message: RegExp, what: string): void {
  assert.equal(Code[outcome.code], Code[Code.InvalidArgument], `${what}: ${outcome.message}`);
  assert.match(outcome.message, message, what);
}

test("Connect GET whose message is not base64: 400 invalid_argument saying so", async () => {
  for (const method of ["GetState", "GetLock"]) {
    const outcome = await connectUnary(
      srv.url,
      "GET",
      `${SERVICE}/${method}?encoding=proto&base64=1&message=***`,
    );
    assert.equal(outcome.status, 400, method);
    assertInvalid(outcome, /^the message query parameter is not valid base64/, method);
  }
  const json = await connectUnary(
    srv.url,
    "GET",
    `${SERVICE}/GetState?encoding=json&base64=1&message=%25%25`,
  );
  assertInvalid(json, /not valid base64/, "JSON GET");
  await assertAlive(srv.url);
});

test("Connect GET whose message does not decode: 400 invalid_argument naming the method", async () => {
  const message = GARBAGE.toString("base64url");
  const outcome = await connectUnary(
    srv.url,
    "GET",
    `${SERVICE}/GetState?encoding=proto&base64=1&message=${message}`,
  );
  assert.equal(outcome.status, 400);
  assertInvalid(outcome, decodeError("GetState"), "binary GET");
  const compressed = gzipSync(GARBAGE).toString("base64url");
  const gzipped = await connectUnary(
    srv.url,
    "GET",
    `${SERVICE}/GetState?encoding=proto&base64=1&compression=gzip&message=${compressed}`,
  );
  assertInvalid(gzipped, decodeError("GetState"), "gzip GET");
  // JSON that does not decode was already answered this way by Connect; it still is.
  const json = await connectUnary(
    srv.url,
    "GET",
    `${SERVICE}/GetState?encoding=json&message=${encodeURIComponent('{"workspace":7}')}`,
  );
  assertInvalid(json, /workspace/, "JSON GET");
});

test("a malformed Connect GET from a stranger is refused as unauthenticated first", async () => {
  const guarded = await serveOnDisk({
    authenticate: async (req) => {
      if (req.headers.get("authorization") !== "Bearer ok")
        throw new UnauthenticatedError("credentials required");
      return { method: "token", name: "ci" };
    },
  });
  const path = `${SERVICE}/GetState?encoding=proto&base64=1&message=***`;
  const stranger = await connectUnary(guarded.url, "GET", path);
  assert.equal(stranger.status, 401);
  assert.equal(stranger.code, Code.Unauthenticated);
  const known = await connectUnary(guarded.url, "GET", path, { authorization: "Bearer ok" });
  assertInvalid(known, /not valid base64/, "authenticated");
});

test("a garbage binary unary request: INVALID_ARGUMENT in every protocol, compressed or not", async () => {
  const putState = `${SERVICE}/PutState`;
  const connectBinary = await connectUnary(
    srv.url,
    "POST",
    putState,
    { "content-type": "application/proto" },
    GARBAGE,
  );
  assert.equal(connectBinary.status, 400);
  assertInvalid(connectBinary, decodeError("PutState"), "Connect binary over HTTP/1.1");

  const connectGzip = await connectUnary(
    srv.url,
    "POST",
    putState,
    { "content-type": "application/proto", "content-encoding": "gzip" },
    gzipSync(GARBAGE),
  );
  assertInvalid(connectGzip, decodeError("PutState"), "Connect binary, gzip");

  const grpc = await rawH2(srv.url, putState, { "content-type": "application/grpc" }, envelope(0, GARBAGE));
  assertInvalid(grpcTrailers(grpc.trailers, grpc.headers), decodeError("PutState"), "gRPC");

  const grpcGzip = await rawH2(
    srv.url,
    putState,
    { "content-type": "application/grpc", "grpc-encoding": "gzip" },
    envelope(1, gzipSync(GARBAGE)),
  );
  assertInvalid(grpcTrailers(grpcGzip.trailers, grpcGzip.headers), decodeError("PutState"), "gRPC, gzip");

  const web = await h1(
    srv.url,
    "POST",
    putState,
    { "content-type": "application/grpc-web+proto" },
    envelope(0, GARBAGE),
  );
  assertInvalid(grpcWebTrailer(web.body), decodeError("PutState"), "gRPC-Web over HTTP/1.1");

  // Other unary methods, one of each service.
  for (const path of ["/tfstate.v1.StateService/Lock", "/tfstate.v1.WorkspaceService/ListWorkspaces"]) {
    const method = path.slice(path.lastIndexOf("/") + 1);
    const other = await rawH2(srv.url, path, { "content-type": "application/grpc" }, envelope(0, GARBAGE));
    assertInvalid(grpcTrailers(other.trailers, other.headers), decodeError(method), path);
  }
  await assertAlive(srv.url);
});

test("a garbage GetState request on the endpoint below Connect: INVALID_ARGUMENT too", async () => {
  const path = `${SERVICE}/GetState`;
  const grpc = await rawH2(srv.url, path, { "content-type": "application/grpc" }, envelope(0, GARBAGE));
  assertInvalid(grpcTrailers(grpc.trailers, grpc.headers), decodeError("GetState"), "gRPC");
  const connect = await connectUnary(srv.url, "POST", path, { "content-type": "application/proto" }, GARBAGE);
  assert.equal(connect.status, 400);
  assertInvalid(connect, decodeError("GetState"), "Connect binary");
});

test("garbage messages on streaming methods: INVALID_ARGUMENT, client and server streaming, every protocol", async () => {
  for (const method of ["UploadState", "DownloadState", "WatchLock"]) {
    const path = `${SERVICE}/${method}`;
    // gRPC over HTTP/2 (WatchLock there is the endpoint below Connect).
    const grpc = await rawH2(srv.url, path, { "content-type": "application/grpc" }, envelope(0, GARBAGE));
    assertInvalid(grpcTrailers(grpc.trailers, grpc.headers), decodeError(method), `${method}, gRPC`);
    // Connect streaming over HTTP/1.1 (always Connect's handler).
    const connect = await h1(
      srv.url,
      "POST",
      path,
      { "content-type": "application/connect+proto" },
      envelope(0, GARBAGE),
    );
    assertInvalid(connectEndStream(connect.body), decodeError(method), `${method}, Connect streaming`);
    // gRPC-Web over HTTP/1.1.
    const web = await h1(
      srv.url,
      "POST",
      path,
      { "content-type": "application/grpc-web+proto" },
      envelope(0, GARBAGE),
    );
    assertInvalid(grpcWebTrailer(web.body), decodeError(method), `${method}, gRPC-Web`);
  }
  // A garbage chunk after a good header, in a client stream.
  const header = toBinary(
    UploadStateRequestSchema,
    create(UploadStateRequestSchema, { payload: { case: "header", value: { workspace: "default" } } }),
  );
  const upload = await rawH2(
    srv.url,
    `${SERVICE}/UploadState`,
    { "content-type": "application/grpc" },
    Buffer.concat([envelope(0, header), envelope(0, GARBAGE)]),
  );
  assertInvalid(grpcTrailers(upload.trailers, upload.headers), decodeError("UploadState"), "a garbage chunk");
  await assertAlive(srv.url);
});

test("JSON that does not decode stays INVALID_ARGUMENT naming the field", async () => {
  const outcome = await connectUnary(
    srv.url,
    "POST",
    `${SERVICE}/PutState`,
    { "content-type": "application/json" },
    Buffer.from('{"workspace": 12, "state": "not base64 !"}'),
  );
  assert.equal(outcome.status, 400);
  assertInvalid(outcome, /workspace|state/, "JSON");
});
