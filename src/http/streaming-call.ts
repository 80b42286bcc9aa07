/**
 * A server-streaming call whose frames the edge writes itself (WatchLock: rpc/fast-methods.ts),
 * run the way Connect's own handlers run one, with Connect's own pieces: the protocol from the
 * content type, the timeout and compression headers parsed by Connect's parsers, a Connect
 * HandlerContext (deadline, signals, values), the server's request gate (authentication), the
 * request message read and decoded by Connect's envelope transforms, and the implementation
 * invoked through the server's interceptors (telemetry, error mapping). Only the response side is
 * this module's: its headers, the frames the implementation's sink writes, and the end of the
 * stream (stream-response.ts). That keeps each of thousands of open watches at a few KB, where
 * Connect's response pipeline held tens of KB per stream.
 */
import {
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  pipe,
  transformDecompressEnvelope,
  transformInvokeImplementation,
  transformParseEnvelope,
  transformSplitEnvelope,
  type UniversalServerRequest,
} from "@connectrpc/connect/protocol";
import * as connect from "@connectrpc/connect/protocol-connect";
import * as grpc from "@connectrpc/connect/protocol-grpc";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";
import type { Logger } from "../log.ts";
import { envelope } from "../rpc/envelope.ts";
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

const PROCEDURE = (spec: MethodImplSpec) => `${spec.method.parent.typeName}/${spec.method.name}`;

/** Where the response goes, once the protocol and its headers are known. */
export type ResponseOpener = (protocol: StreamProtocol, header: Headers) => StreamResponse;

/** The wire of a request: its protocol, codec, and the names of its compression headers. */
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
  const g = w === undefined ? grpc.parseContentType(contentType) : undefined;
  // gRPC-Web's base64 text form is not served, as by Connect's own handlers.
  if ((w === undefined || w.text) && g === undefined) return undefined;
  const binary = (w ?? g)?.binary ?? true;
  return {
    protocol: w !== undefined ? "grpc-web" : "grpc",
    binary,
    contentType:
      w !== undefined
        ? binary
          ? grpcWeb.contentTypeProto
          : grpcWeb.contentTypeJson
        : binary
          ? grpc.contentTypeProto
          : grpc.contentTypeJson,
    encoding: grpc.headerEncoding,
    acceptEncoding: grpc.headerAcceptEncoding,
    timeout: "grpc-timeout",
  };
}

/** Serves calls of one server-streaming method; `serve` resolves once the response has ended. */
export function streamingCall(
  spec: MethodImplSpec & { kind: "server_streaming" },
  opts: StreamingCallOptions,
) {
  const serialization = createMethodSerializationLookup(spec.method, undefined, undefined, {
    readMaxBytes: opts.readMaxBytes,
    writeMaxBytes: opts.writeMaxBytes,
  });

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
    try {
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      await opts.requestGate(context);
      const input = pipe(
        req.body as AsyncIterable<Uint8Array>,
        transformSplitEnvelope(opts.readMaxBytes),
        transformDecompressEnvelope(compression.request, opts.readMaxBytes),
        transformParseEnvelope(serialization.getI(wire.binary)),
      );
      const output = transformInvokeImplementation(spec, context, opts.interceptors)(input);
      const encode = serialization.getO(wire.binary);
      // Messages the implementation yields itself (none while its sink writes the events).
      for await (const message of output) {
        if (!res.write(envelope(0, encode.serialize(message))))
          await new Promise<void>((r) => res.onDrain(r));
      }
      res.end(undefined, context.responseTrailer);
    } catch (err) {
      res.end(toConnectError(err, opts.logger, PROCEDURE(spec)), context.responseTrailer);
    } finally {
      context.abort();
    }
    return undefined;
  };
}
