/**
 * A server-streaming call whose frames the edge writes itself (WatchLock: rpc/fast-methods.ts),
 * run the way Connect's own handlers run one, on Connect's own terms: the protocol from the
 * content type, the timeout and compression headers read by Connect's parsers, a Connect
 * HandlerContext (deadline, signals, values), the server's request gate (authentication), the
 * request message decoded by Connect's serialization, and the implementation called through the
 * server's interceptors (telemetry, error mapping), as Connect's `applyInterceptors` composes them.
 *
 * What differs is the machinery, not the steps: a watch stays open for hours, thousands at once,
 * and Connect's handler keeps a chain of generator stages for each (request parsing, invocation,
 * normalisation, serialisation, compression, framing), about 50 KB per stream when measured. Here
 * a stream holds its HandlerContext, its implementation's generator, the interceptors' wrappers and
 * the response (stream-response.ts), whose frames the shared writer fills (watch-frames.ts).
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type StreamResponse as ConnectStreamResponse,
  createContextKey,
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
} from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  type Serialization,
  type UniversalServerRequest,
} from "@connectrpc/connect/protocol";
import * as connect from "@connectrpc/connect/protocol-connect";
import * as grpc from "@connectrpc/connect/protocol-grpc";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";
import type { Logger } from "../log.ts";
import { COMPRESSED_FLAG, envelope } from "../rpc/envelope.ts";
import { toConnectError } from "../rpc/errors.ts";
import { watchSinkKey } from "../rpc/fast-methods.ts";
import { requestTimeout } from "./request-timeout.ts";
import type { StreamProtocol, StreamResponse } from "./stream-response.ts";
import { type FanOut, watchFrameSink } from "./watch-frames.ts";

export interface StreamingCallOptions {
  interceptors: Interceptor[];
  requestGate: (ctx: HandlerContext) => Promise<void>;
  acceptCompression: readonly Compression[];
  readMaxBytes: number;
  writeMaxBytes: number;
  /** Shares the watchers' writes out over the event loop's turns. */
  fanOut: FanOut;
  logger: Logger;
}

/** Where the response goes, once the protocol and its headers are known. */
export type ResponseOpener = (protocol: StreamProtocol, header: Headers) => StreamResponse;

type ServerStreamingSpec = Extract<MethodImplSpec, { kind: "server_streaming" }>;

/** The wire of a request: its protocol, codec, and the names of its compression and timeout headers. */
interface Wire {
  protocol: StreamProtocol;
  binary: boolean;
  contentType: string;
  encoding: string;
  acceptEncoding: string;
  timeout: "grpc-timeout" | "connect-timeout-ms";
}

function wireOf(contentType: string | null): Wire | undefined {
  const c = connect.parseContentType(contentType);
  if (c?.stream) {
    return {
      protocol: "connect",
      binary: c.binary,
      contentType: c.binary ? connect.contentTypeStreamProto : connect.contentTypeStreamJson,
      encoding: connect.headerStreamEncoding,
      acceptEncoding: connect.headerStreamAcceptEncoding,
      timeout: "connect-timeout-ms",
    };
  }
  const w = grpcWeb.parseContentType(contentType);
  if (w?.text) return undefined; // gRPC-Web's base64 text form: not served, as by Connect
  const g = w === undefined ? grpc.parseContentType(contentType) : undefined;
  const found = w ?? g;
  if (found === undefined) return undefined;
  const web = w !== undefined;
  return {
    protocol: web ? "grpc-web" : "grpc",
    binary: found.binary,
    contentType: web
      ? found.binary
        ? grpcWeb.contentTypeProto
        : grpcWeb.contentTypeJson
      : found.binary
        ? grpc.contentTypeProto
        : grpc.contentTypeJson,
    encoding: grpc.headerEncoding,
    acceptEncoding: grpc.headerAcceptEncoding,
    timeout: "grpc-timeout",
  };
}

/** Serves calls of one server-streaming method. */
export function streamingCall(spec: ServerStreamingSpec, opts: StreamingCallOptions) {
  const serialization = createMethodSerializationLookup(spec.method, undefined, undefined, {
    readMaxBytes: opts.readMaxBytes,
    writeMaxBytes: opts.writeMaxBytes,
  });
  const procedure = `${spec.method.parent.typeName}/${spec.method.name}`;
  const invoke = invoker(spec, opts.interceptors);

  /**
   * Serves `req` on the response `open` gives; resolves once the response has ended. A request
   * that is not a streaming POST of one of the protocols resolves to the HTTP status to refuse it
   * with, as Connect's handlers do (405, 415), with nothing sent.
   */
  return async function serve(
    req: UniversalServerRequest,
    open: ResponseOpener,
  ): Promise<405 | 415 | undefined> {
    if (req.method !== "POST") return 405;
    const wire = wireOf(req.header.get("content-type"));
    if (wire === undefined) return 415;
    const timeout = requestTimeout(wire.timeout, req.header.get(wire.timeout));
    const compression = compressionNegotiate(
      [...opts.acceptCompression],
      req.header.get(wire.encoding),
      req.header.get(wire.acceptEncoding),
      wire.acceptEncoding,
    );
    const context = createHandlerContext({
      service: spec.method.parent,
      method: spec.method,
      protocolName: wire.protocol,
      requestMethod: req.method,
      url: req.url,
      ...(timeout.timeoutMs !== undefined ? { timeoutMs: timeout.timeoutMs } : {}),
      requestSignal: req.signal,
      requestHeader: req.header,
      responseHeader: { "content-type": wire.contentType },
      ...(req.contextValues !== undefined ? { contextValues: req.contextValues } : {}),
    });
    const res = open(wire.protocol, context.responseHeader);
    context.values.set(
      watchSinkKey,
      watchFrameSink(res, wire.binary ? "proto" : "json", opts.fanOut, opts.writeMaxBytes),
    );
    let output: AsyncIterator<MessageShape<DescMessage>>;
    try {
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      await opts.requestGate(context);
      const body = await readAll(
        req.body as AsyncIterable<Uint8Array>,
        opts.readMaxBytes + 5,
        spec.method.name,
      );
      const input = oneMessage(body, compression.request, opts.readMaxBytes, serialization.getI(wire.binary));
      output = (await invoke(context, input))[Symbol.asyncIterator]();
    } catch (err) {
      res.end(toConnectError(err, opts.logger, procedure), context.responseTrailer);
      context.abort();
      return undefined;
    }
    // Returned, not awaited: no function stays suspended for the hours a watch may last, and what
    // the end needs is all the continuation keeps (not the whole context).
    const trailer = context.responseTrailer;
    const abort = context.abort;
    const { logger } = opts;
    return drain(output, res, serialization.getO(wire.binary)).then(
      () => {
        res.end(undefined, trailer);
        abort();
        return undefined;
      },
      (err: unknown) => {
        res.end(toConnectError(err, logger, procedure), trailer);
        abort();
        return undefined;
      },
    );
  };
}

/** Writes what the implementation yields itself (nothing while its sink writes the events), to the end. */
function drain<T>(it: AsyncIterator<T>, res: StreamResponse, encode: Serialization<T>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const step = (): void => {
      it.next().then((r) => {
        if (r.done) resolve();
        else if (res.write(envelope(0, encode.serialize(r.value)))) step();
        else res.onDrain(step);
      }, reject);
    };
    step();
  });
}

/**
 * Calls the implementation through the interceptors, as Connect does for a server-streaming
 * method: the interceptors see a stream request whose messages are the one request message, and
 * return a stream response whose messages are the implementation's.
 */
/** The call's HandlerContext, for the implementation, carried by the request through the interceptors. */
const handlerContextKey = createContextKey<HandlerContext | undefined>(undefined, {
  description: "the call's handler context",
});

function invoker(spec: ServerStreamingSpec, interceptors: readonly Interceptor[]) {
  type Next = (req: StreamRequest) => Promise<ConnectStreamResponse>;
  const impl: Next = async (req) => {
    const context = req.contextValues.get(handlerContextKey) as HandlerContext;
    // The first message; errorInterceptor refuses a second as the client's mistake.
    let first: MessageShape<DescMessage> | undefined;
    for await (const m of req.message) first ??= m;
    if (first === undefined) {
      throw new ConnectError(`${spec.method.name} takes one request message, got none`, Code.InvalidArgument);
    }
    // What an interceptor changed in the request reaches the implementation (as in Connect).
    const unchanged =
      req.header === context.requestHeader &&
      req.signal === context.signal &&
      req.contextValues === context.values;
    const merged: HandlerContext = unchanged
      ? context
      : { ...context, requestHeader: req.header, signal: req.signal, values: req.contextValues };
    return {
      stream: true,
      service: req.service,
      method: req.method,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      message: spec.impl(first, merged) as AsyncIterable<MessageShape<DescMessage>>,
    } as ConnectStreamResponse;
  };
  // Composed once: a call's own state travels in its request, so that nothing a long stream keeps
  // alive (the interceptors' wrappers around its responses) holds a closure over that call's setup.
  let next = impl;
  for (let i = interceptors.length - 1; i >= 0; i--)
    next = (interceptors[i] as Interceptor)(next as never) as Next;
  const chain = next;
  return async (context: HandlerContext, input: AsyncIterable<MessageShape<DescMessage>>) => {
    context.values.set(handlerContextKey, context);
    const res = await chain({
      stream: true,
      service: spec.method.parent,
      method: spec.method,
      requestMethod: context.requestMethod,
      url: context.url,
      signal: context.signal,
      header: context.requestHeader,
      contextValues: context.values,
      message: input,
    } as StreamRequest);
    return res.message;
  };
}

/** The request body, refused once it holds more than one message of the limit can. */
async function readAll(body: AsyncIterable<Uint8Array>, limit: number, method: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > limit) {
      throw new ConnectError(
        `the ${method} request is larger than configured readMaxBytes ${limit - 5}`,
        Code.ResourceExhausted,
      );
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks, size);
}

/**
 * The messages of an enveloped body, decompressed and decoded as they are read (so that errors
 * come out inside the interceptors): Connect's framing rules and its codecs.
 */
async function* oneMessage<T>(
  body: Uint8Array,
  compression: Compression | null,
  readMaxBytes: number,
  codec: Serialization<T>,
): AsyncGenerator<T> {
  let at = 0;
  while (at < body.byteLength) {
    if (body.byteLength - at < 5)
      throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    const flags = body[at] as number;
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    const start = at + 5;
    if (start + length > body.byteLength) {
      throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    }
    let payload = body.subarray(start, start + length);
    if (flags & COMPRESSED_FLAG) {
      if (compression === null) {
        throw new ConnectError(
          "the request message is compressed, but the request names no encoding",
          Code.InvalidArgument,
        );
      }
      payload = await compression.decompress(payload, readMaxBytes);
    }
    yield codec.parse(payload);
    at = start + length;
  }
}
