/**
 * GetState's body writer (rpc/fast-methods.ts): Connect's own handler for GetState, wrapped so that
 * a binary response carries the coordinator's state buffer as it is. The call runs exactly as any
 * other (authentication, telemetry, deadline, the handler, error mapping, all Connect's); the
 * handler hands the state over (`stateBodyKey`) and lets Connect encode the rest of the message,
 * and this wrapper then appends the state field after it: the bytes are those of Connect's
 * canonical encoding (field 1 metadata, field 2 state), with the state never copied.
 *
 * A compressed response is made once per state buffer and compression and kept beside the buffer
 * for as long as that buffer lives (the cache's entry, or just this call), so repeated reads of an
 * unchanged state do not compress it again. JSON responses carry the state in base64: Connect
 * encodes those itself.
 */
import type { Compression, UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { compressionNegotiate } from "@connectrpc/connect/protocol";
import { parseContentType as parseConnectContentType } from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcContentType } from "@connectrpc/connect/protocol-grpc";
import { parseContentType as parseGrpcWebContentType } from "@connectrpc/connect/protocol-grpc-web";
import { COMPRESSED_FLAG } from "../rpc/envelope.ts";
import { type StateBodySink, stateBodyKey } from "../rpc/fast-methods.ts";

/** GetStateResponse.state is field 2, length-delimited: tag (2 << 3) | 2. */
const STATE_FIELD_TAG = 0x12;
const TRAILER_FLAG = 0x80;

export interface StateBodyOptions {
  /** The compressions the server offers, in Connect's order of preference. */
  compressions: readonly Compression[];
  /** Messages smaller than this are sent uncompressed, as Connect does. */
  compressMinBytes: number;
}

/** How a binary GetState answer is framed: Connect's bare unary body or one gRPC envelope. */
type Form = { protocol: "connect" } | { protocol: "grpc" | "grpc-web" };

/** A compressed response message, kept for the state buffer it was made from. */
interface Compressed {
  compression: string;
  /** Everything before the state bytes, uncompressed: the rest of the message and the field header. */
  prefix: Buffer;
  bytes: Promise<Uint8Array>;
}

export function stateBodyHandler(handler: UniversalHandler, opts: StateBodyOptions): UniversalHandler {
  const compressed = new WeakMap<Uint8Array, Compressed>();

  const wrapped = async (req: UniversalServerRequest) => {
    const form = binaryForm(req);
    if (form === undefined) return handler(req);
    let state: Uint8Array | undefined;
    const sink: StateBodySink = {
      take(bytes) {
        state = bytes;
        return true;
      },
    };
    req.contextValues?.set(stateBodyKey, sink);
    const res = await handler(req);
    if (state === undefined || res.header === undefined || !isByteStream(res.body)) return res;
    const body = await readAll(res.body);
    const message = await messageOf(body, form, res.header, opts.compressions);
    if (message === undefined) return { ...res, body: oneChunk(body) };

    const prefix = Buffer.concat([message.bytes, fieldHeader(STATE_FIELD_TAG, state.byteLength)]);
    const size = prefix.byteLength + state.byteLength;
    const compression = size >= opts.compressMinBytes ? negotiated(req, form, opts.compressions) : null;
    const header = new Headers(res.header);
    const encodingHeader = form.protocol === "connect" ? "content-encoding" : "grpc-encoding";
    let chunks: Uint8Array[];
    if (compression !== null) {
      const bytes = await compressedFor(compressed, state, prefix, compression);
      header.set(encodingHeader, compression.name);
      chunks =
        form.protocol === "connect" ? [bytes] : [envelopeHead(COMPRESSED_FLAG, bytes.byteLength), bytes];
    } else {
      if (form.protocol === "connect") header.delete(encodingHeader);
      chunks = form.protocol === "connect" ? [prefix, state] : [envelopeHead(0, size), prefix, state];
    }
    if (form.protocol === "grpc-web" && message.trailer !== undefined) chunks.push(message.trailer);
    // The whole body is known: say its length where HTTP/1.1 would otherwise chunk it.
    if (form.protocol !== "grpc") {
      header.set("content-length", String(chunks.reduce((n, c) => n + c.byteLength, 0)));
    }
    return { ...res, header, body: chunksOf(chunks) };
  };
  return Object.assign(wrapped, handler);
}

/** The binary form of a GetState request; undefined for JSON (and gRPC-Web's text form). */
function binaryForm(req: UniversalServerRequest): Form | undefined {
  const contentType = req.header.get("content-type");
  if (req.method === "GET") {
    return new URL(req.url).searchParams.get("encoding") === "proto" ? { protocol: "connect" } : undefined;
  }
  const connect = parseConnectContentType(contentType);
  if (connect !== undefined) return connect.binary && !connect.stream ? { protocol: "connect" } : undefined;
  const grpcWeb = parseGrpcWebContentType(contentType);
  if (grpcWeb !== undefined) return grpcWeb.binary && !grpcWeb.text ? { protocol: "grpc-web" } : undefined;
  const grpc = parseGrpcContentType(contentType);
  return grpc?.binary ? { protocol: "grpc" } : undefined;
}

/** The response compression Connect would choose for this request. */
function negotiated(
  req: UniversalServerRequest,
  form: Form,
  compressions: readonly Compression[],
): Compression | null {
  const accept = form.protocol === "connect" ? "accept-encoding" : "grpc-accept-encoding";
  return compressionNegotiate([...compressions], null, req.header.get(accept), accept).response;
}

/**
 * The encoded message (uncompressed) in Connect's answer, and gRPC-Web's trailer frame after it;
 * undefined when the answer holds no message (it failed after the handler handed the state over).
 */
async function messageOf(
  body: Uint8Array,
  form: Form,
  header: Headers,
  compressions: readonly Compression[],
): Promise<{ bytes: Uint8Array; trailer?: Uint8Array } | undefined> {
  const decompress = (bytes: Uint8Array, name: string | null) => {
    if (name === null || name === "identity") return Promise.resolve(bytes);
    const c = compressions.find((x) => x.name === name);
    if (c === undefined) throw new Error(`GetState answered in unknown compression ${name}`);
    return c.decompress(bytes, Number.MAX_SAFE_INTEGER);
  };
  if (form.protocol === "connect") {
    return { bytes: await decompress(body, header.get("content-encoding")) };
  }
  if (body.byteLength < 5 || ((body[0] as number) & TRAILER_FLAG) !== 0) return undefined;
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1);
  const payload = body.subarray(5, 5 + length);
  const flags = body[0] as number;
  const bytes = flags & COMPRESSED_FLAG ? await decompress(payload, header.get("grpc-encoding")) : payload;
  const rest = body.subarray(5 + length);
  return rest.byteLength > 0 ? { bytes, trailer: rest } : { bytes };
}

/** The compressed message for `state` after `prefix`: made once, then reused while `state` lives. */
function compressedFor(
  cache: WeakMap<Uint8Array, Compressed>,
  state: Uint8Array,
  prefix: Buffer,
  compression: Compression,
): Promise<Uint8Array> {
  const kept = cache.get(state);
  if (kept !== undefined && kept.compression === compression.name && kept.prefix.equals(prefix)) {
    return kept.bytes;
  }
  const entry: Compressed = {
    compression: compression.name,
    prefix,
    bytes: compression.compress(Buffer.concat([prefix, state])),
  };
  cache.set(state, entry);
  entry.bytes.catch(() => {
    if (cache.get(state) === entry) cache.delete(state);
  });
  return entry.bytes;
}

/** A length-delimited field's tag and its length as a varint. */
function fieldHeader(tag: number, length: number): Buffer {
  const out = [tag];
  let n = length;
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function envelopeHead(flags: number, length: number): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = flags;
  head.writeUInt32BE(length, 1);
  return head;
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
}

function oneChunk(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return chunksOf([bytes]);
}

/** The chunks as a response body, each written as it is (never copied). */
async function* chunksOf(chunks: readonly Uint8Array[]): AsyncIterable<Uint8Array> {
  yield* chunks;
}
