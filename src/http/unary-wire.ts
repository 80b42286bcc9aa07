/**
 * A unary call answered below Connect (http/get-state-endpoint.ts), on HTTP/1.1 or HTTP/2, in
 * each of the three protocols, with a binary request and response:
 *
 * - Connect: the message is the body (`application/proto`), compressed with `Content-Encoding`;
 *   an error is an HTTP status and a JSON body.
 * - gRPC (HTTP/2 only): one enveloped message, then the status in trailers.
 * - gRPC-Web: one enveloped message, then a trailer frame (flag 0x80) with the status.
 *
 * Connect's protocol packages supply the pieces (content types, timeouts, compression
 * negotiation, status codes, error JSON, trailers), so answers look exactly as they do from the
 * Connect handlers. What this module does not take (JSON, Connect GET, compressed requests,
 * gRPC-Web's text form, gRPC over HTTP/1.1) stays with Connect.
 */
import type { ServerResponse } from "node:http";
import type { Http2ServerResponse, OutgoingHttpHeaders } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { type Compression, compressionNegotiate } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
  parseContentType as parseConnectContentType,
} from "@connectrpc/connect/protocol-connect";
import {
  contentTypeProto as grpcProto,
  parseContentType as parseGrpcContentType,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import {
  contentTypeProto as grpcWebProto,
  parseContentType as parseGrpcWebContentType,
  trailerFlag,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import { COMPRESSED_FLAG, envelope } from "../rpc/envelope.ts";
import type { NodeRequest, NodeResponse } from "./listener.ts";
import { uncompressed } from "./request-parts.ts";
import { type RequestTimeout, requestTimeout } from "./request-timeout.ts";
import { headersObject } from "./stream-wire.ts";

export type UnaryProtocol = "connect" | "grpc" | "grpc-web";

export interface UnaryWire {
  readonly protocol: UnaryProtocol;
  /** Bytes around the request message: 5 for an envelope, none for Connect's unary body. */
  readonly framing: 0 | 5;
  /** The request's timeout in whole milliseconds, if it sets one; a malformed one is an error to answer. */
  readonly timeout: RequestTimeout;
  /** The compression for the response: the first the client accepts that the server has. */
  readonly responseCompression: Compression | null;
}

/** The message of a response: `head` then `tail`, which is sent as it is (never copied). */
export interface UnaryMessage {
  head: Uint8Array;
  tail?: Uint8Array | undefined;
  /** Whether the bytes are compressed with the wire's response compression. */
  compressed: boolean;
}

/**
 * The wire of a unary request this module can answer, or undefined when Connect must take it:
 * anything but a POST with a binary content type of one of the protocols and an uncompressed body.
 */
export function unaryWire(req: NodeRequest, compressions: readonly Compression[]): UnaryWire | undefined {
  if (req.method !== "POST") return undefined;
  const h = req.headers;
  const contentType = h["content-type"] ?? null;
  const connect = parseConnectContentType(contentType);
  if (connect !== undefined) {
    if (!connect.binary || connect.stream || !uncompressed(h["content-encoding"])) return undefined;
    return {
      protocol: "connect",
      framing: 0,
      timeout: requestTimeout("connect-timeout-ms", one(h["connect-timeout-ms"])),
      responseCompression: negotiate(compressions, one(h["accept-encoding"])),
    };
  }
  const grpcWeb = parseGrpcWebContentType(contentType);
  const grpc = grpcWeb === undefined ? parseGrpcContentType(contentType) : undefined;
  const found = grpcWeb ?? grpc;
  if (found === undefined || !found.binary || grpcWeb?.text || !uncompressed(h["grpc-encoding"]))
    return undefined;
  if (grpc !== undefined && req.httpVersionMajor !== 2) return undefined;
  return {
    protocol: grpcWeb !== undefined ? "grpc-web" : "grpc",
    framing: 5,
    timeout: requestTimeout("grpc-timeout", one(h["grpc-timeout"])),
    responseCompression: negotiate(compressions, one(h["grpc-accept-encoding"])),
  };
}

function one(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value.join(",") : value) ?? null;
}

function negotiate(compressions: readonly Compression[], accepted: string | null): Compression | null {
  // The request is uncompressed (checked above), so only the response side can come out of this.
  return compressionNegotiate([...compressions], null, accepted, "accept-encoding").response;
}

/** Answers a unary call once: its message, or an error. No-ops once the client has gone. */
export class UnaryResponse {
  readonly #res: NodeResponse;
  readonly #wire: UnaryWire;
  #answered = false;

  constructor(res: NodeResponse, wire: UnaryWire) {
    this.#res = res;
    this.#wire = wire;
  }

  get #gone(): boolean {
    return this.#res.destroyed || this.#res.headersSent;
  }

  send(message: UnaryMessage): void {
    if (this.#answered || this.#gone) return;
    this.#answered = true;
    const res = this.#res;
    const { head, tail } = message;
    const size = head.byteLength + (tail?.byteLength ?? 0);
    const encoding = message.compressed ? this.#wire.responseCompression?.name : undefined;
    if (message.compressed && encoding === undefined)
      throw new Error("a compressed message without a compression");
    const { protocol } = this.#wire;
    if (protocol === "connect") {
      writeHead(res, 200, {
        "content-type": contentTypeUnaryProto,
        "content-length": size,
        ...(encoding !== undefined ? { "content-encoding": encoding } : {}),
      });
      write(res, head);
      if (tail !== undefined) write(res, tail);
      res.end();
      return;
    }
    const frameHead = Buffer.allocUnsafe(5 + head.byteLength);
    frameHead[0] = message.compressed ? COMPRESSED_FLAG : 0;
    frameHead.writeUInt32BE(size, 1);
    frameHead.set(head, 5);
    const headers: OutgoingHttpHeaders = {
      "content-type": protocol === "grpc" ? grpcProto : grpcWebProto,
      ...(encoding !== undefined ? { "grpc-encoding": encoding } : {}),
    };
    if (protocol === "grpc") {
      writeHead(res, 200, headers);
      write(res, frameHead);
      if (tail !== undefined) write(res, tail);
      (res as Http2ServerResponse).addTrailers(trailers(undefined));
      res.end();
      return;
    }
    const trailer = envelope(trailerFlag, trailerSerialize(setTrailerStatus(new Headers(), undefined)));
    writeHead(res, 200, { ...headers, "content-length": 5 + size + trailer.byteLength });
    write(res, frameHead);
    if (tail !== undefined) write(res, tail);
    res.end(trailer);
  }

  fail(error: ConnectError): void {
    if (this.#answered || this.#gone) return;
    this.#answered = true;
    const res = this.#res;
    switch (this.#wire.protocol) {
      case "connect": {
        const body = errorToJsonBytes(error, {});
        writeHead(res, codeToHttpStatus(error.code), {
          ...headersObject(error.metadata),
          "content-type": contentTypeUnaryJson,
          "content-length": body.byteLength,
        });
        res.end(body);
        return;
      }
      case "grpc":
        // Trailers-only: with nothing to send, Node ends the stream with the headers, so the
        // status travels in them.
        writeHead(res, 200, { "content-type": grpcProto, ...trailers(error) });
        res.end();
        return;
      case "grpc-web": {
        const trailer = envelope(trailerFlag, trailerSerialize(setTrailerStatus(new Headers(), error)));
        writeHead(res, 200, { "content-type": grpcWebProto, "content-length": trailer.byteLength });
        res.end(trailer);
        return;
      }
    }
  }
}

function trailers(error: ConnectError | undefined): OutgoingHttpHeaders {
  return headersObject(setTrailerStatus(new Headers(), error));
}

/** Sets the status and headers; Node sends them with the first write. */
function writeHead(res: NodeResponse, status: number, headers: OutgoingHttpHeaders): void {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) res.setHeader(name, value);
  }
}

/** Queues `bytes` on the response as they are (Node keeps the reference; nothing is copied here). */
function write(res: NodeResponse, bytes: Uint8Array): void {
  (res as ServerResponse).write(bytes);
}
