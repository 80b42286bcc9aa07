/**
 * A request message the server cannot decode is the client's mistake: INVALID_ARGUMENT, with a
 * message that names what is wrong. connect-es answers two such cases as server faults, and both
 * happen inside its handler before any interceptor runs: an undecodable binary message is
 * INTERNAL "parse binary: …", and a Connect GET whose `message` is not base64 is INTERNAL
 * "internal error". So unary requests are checked here, at the edge, before Connect decodes them:
 *
 * - a binary POST body (Connect, gRPC, gRPC-Web): `validatingHandler` wraps the router's handler
 *   and gives it a body that, once read, fails with INVALID_ARGUMENT when it does not decode;
 *   Connect reads the body only after its request gate (authentication), and answers that error
 *   in the request's own protocol;
 * - a Connect GET: `checkConnectGet`, run by the request gate after authentication, since a GET
 *   has no body to carry the error.
 *
 * Streaming requests are decoded inside the handler's request stream, which interceptors see:
 * errorInterceptor (rpc/errors.ts) maps the same failures there. JSON needs nothing: Connect's
 * JSON decoding already fails with INVALID_ARGUMENT and names the field. Anything else odd about
 * a request (framing, sizes, compression) is left to Connect, which answers it in its own words.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Compression, UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { parseContentType as parseConnectContentType } from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcContentType } from "@connectrpc/connect/protocol-grpc";
import { parseContentType as parseGrpcWebContentType } from "@connectrpc/connect/protocol-grpc-web";
import { COMPRESSED_FLAG } from "../rpc/envelope.ts";

export interface ValidationOptions {
  /** The compressions the server reads, to look inside a compressed request. */
  compressions: readonly Compression[];
  /** Largest message read, in bytes; a larger request is left to Connect, which refuses it. */
  readMaxBytes: number;
}

/** How a unary request carries its binary message. */
interface BinaryForm {
  /** 5 for one gRPC envelope, 0 for Connect's bare body. */
  framing: 0 | 5;
  /** The request's compression, by name; null for none. */
  encoding: string | null;
}

/** `handler` with its unary binary POST bodies checked before Connect decodes them. */
export function validatingHandler(handler: UniversalHandler, opts: ValidationOptions): UniversalHandler {
  if (handler.method.methodKind !== "unary") return handler;
  const method = handler.method;
  const checked = (req: UniversalServerRequest) => {
    const form = binaryForm(req);
    if (form === undefined || !isByteStream(req.body)) return handler(req);
    return handler({ ...req, body: checkedBody(req.body, form, method.input, method.name, opts) });
  };
  return Object.assign(checked, handler);
}

/**
 * Refuses a Connect GET whose query does not hold a decodable message (with INVALID_ARGUMENT
 * naming the problem); anything else passes. For the request gate, so it runs after authentication.
 */
export async function checkConnectGet(
  ctx: Pick<HandlerContext, "requestMethod" | "url" | "method">,
  opts: ValidationOptions,
): Promise<void> {
  if (ctx.requestMethod !== "GET") return;
  const query = new URL(ctx.url).searchParams;
  const message = query.get("message") ?? "";
  let bytes: Uint8Array;
  if (query.get("base64") === "1") {
    try {
      bytes = base64Decode(message);
    } catch {
      throw new ConnectError(
        "the message query parameter is not valid base64 (base64=1 says it is; standard or URL-safe alphabet)",
        Code.InvalidArgument,
      );
    }
  } else {
    bytes = new TextEncoder().encode(message);
  }
  if (query.get("encoding") !== "proto") return;
  const payload = await decompressed(bytes, query.get("compression"), opts);
  if (payload !== undefined) checkDecodes(ctx.method.input, ctx.method.name, payload);
}

function binaryForm(req: UniversalServerRequest): BinaryForm | undefined {
  if (req.method !== "POST") return undefined;
  const contentType = req.header.get("content-type");
  const connect = parseConnectContentType(contentType);
  if (connect !== undefined) {
    return connect.binary && !connect.stream
      ? { framing: 0, encoding: req.header.get("content-encoding") }
      : undefined;
  }
  const grpc = parseGrpcWebContentType(contentType) ?? parseGrpcContentType(contentType);
  if (grpc === undefined || !grpc.binary) return undefined;
  return { framing: 5, encoding: req.header.get("grpc-encoding") };
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

type MessageDesc = UniversalHandler["method"]["input"];

/**
 * The body as it is, read whole first: it fails (as Connect's read of it, so Connect answers)
 * when it holds one message that does not decode. A body past the size limit passes unchecked.
 */
async function* checkedBody(
  body: AsyncIterable<Uint8Array>,
  form: BinaryForm,
  desc: MessageDesc,
  method: string,
  opts: ValidationOptions,
): AsyncIterable<Uint8Array> {
  const limit = opts.readMaxBytes + form.framing;
  const chunks: Uint8Array[] = [];
  let size = 0;
  let passing = false;
  for await (const chunk of body) {
    if (passing) {
      yield chunk;
      continue;
    }
    chunks.push(chunk);
    size += chunk.byteLength;
    if (size > limit) {
      passing = true;
      yield* chunks;
    }
  }
  if (passing) return;
  const whole = chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks, size);
  const payload = await messagePayload(whole, form, method, opts);
  if (payload !== undefined) checkDecodes(desc, method, payload);
  yield whole;
}

/** The uncompressed message of a body, or undefined when its framing or compression is for Connect to judge. */
async function messagePayload(
  body: Uint8Array,
  form: BinaryForm,
  method: string,
  opts: ValidationOptions,
): Promise<Uint8Array | undefined> {
  if (form.framing === 0) return decompressed(body, form.encoding, opts);
  if (body.byteLength < 5) return undefined;
  const flags = body[0] as number;
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1);
  if (5 + length !== body.byteLength || (flags & ~COMPRESSED_FLAG) !== 0) return undefined;
  const payload = body.subarray(5);
  if (!(flags & COMPRESSED_FLAG)) return payload;
  if (form.encoding === null || form.encoding === "" || form.encoding === "identity") {
    throw new ConnectError(
      `the ${method} request message is compressed, but the request names no encoding`,
      Code.InvalidArgument,
    );
  }
  return decompressed(payload, form.encoding, opts);
}

async function decompressed(
  bytes: Uint8Array,
  encoding: string | null,
  opts: ValidationOptions,
): Promise<Uint8Array | undefined> {
  if (encoding === null || encoding === "" || encoding === "identity") return bytes;
  const compression = opts.compressions.find((c) => c.name === encoding);
  if (compression === undefined) return undefined;
  try {
    return await compression.decompress(bytes, opts.readMaxBytes);
  } catch {
    return undefined;
  }
}

function checkDecodes(desc: MessageDesc, method: string, payload: Uint8Array): void {
  try {
    fromBinary(desc, payload);
  } catch (err) {
    throw new ConnectError(
      `cannot decode the ${method} request: ${err instanceof Error ? err.message : String(err)}`,
      Code.InvalidArgument,
    );
  }
}
