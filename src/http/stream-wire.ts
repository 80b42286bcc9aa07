/**
 * The response side of a server-streaming call on a bare HTTP/2 stream, in each of the three
 * protocols the server speaks, for the one call served below Connect (http/watch-endpoint.ts).
 * Their data frames are the same 5-byte envelope; they differ in how a stream ends:
 *
 * - Connect: a last envelope flagged end-of-stream (0x02) holding JSON, `{}` or `{"error": …}`.
 * - gRPC: HTTP/2 trailers `grpc-status` / `grpc-message`; an error before any message is a
 *   "trailers-only" response, the status in the headers.
 * - gRPC-Web: a last envelope flagged trailers (0x80) holding them as HTTP/1 header lines.
 *
 * Connect's own protocol packages supply the pieces (content types, end-stream JSON, trailer
 * status), so errors look exactly as they do from the Connect handlers. Responses are never
 * compressed (the frames carry flag 0), which every client accepts whatever it offered.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import {
  contentTypeStreamJson as connectJson,
  contentTypeStreamProto as connectProto,
  endStreamFlag,
  endStreamToJson,
  parseContentType as parseConnectContentType,
} from "@connectrpc/connect/protocol-connect";
import {
  contentTypeJson as grpcJson,
  contentTypeProto as grpcProto,
  parseContentType as parseGrpcContentType,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import {
  contentTypeJson as grpcWebJson,
  contentTypeProto as grpcWebProto,
  parseContentType as parseGrpcWebContentType,
  trailerFlag,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import { envelope } from "../rpc/envelope.ts";
import { uncompressed } from "./request-parts.ts";

export type WireProtocol = "connect" | "grpc" | "grpc-web";

export interface StreamWire {
  readonly protocol: WireProtocol;
  /** How messages are encoded both ways. */
  readonly codec: "proto" | "json";
}

/**
 * The wire of a server-streaming request this module can answer, or undefined when Connect must
 * take it: anything but POST, a content type of none of the protocols (or gRPC-Web's base64 text
 * form), a compressed request (this side reads identity only), or a deadline (Connect enforces it).
 */
export function streamWire(headers: IncomingHttpHeaders): StreamWire | undefined {
  if (headers[":method"] !== "POST") return undefined;
  const contentType = headers["content-type"] ?? null;
  const connect = parseConnectContentType(contentType);
  if (connect?.stream) {
    if (!uncompressed(headers["connect-content-encoding"]) || headers["connect-timeout-ms"] !== undefined) {
      return undefined;
    }
    return { protocol: "connect", codec: connect.binary ? "proto" : "json" };
  }
  const grpcWeb = parseGrpcWebContentType(contentType);
  const grpc = grpcWeb === undefined ? parseGrpcContentType(contentType) : undefined;
  const found = grpcWeb ?? grpc;
  if (found === undefined || grpcWeb?.text) return undefined;
  if (!uncompressed(headers["grpc-encoding"]) || headers["grpc-timeout"] !== undefined) return undefined;
  return {
    protocol: grpcWeb !== undefined ? "grpc-web" : "grpc",
    codec: found.binary ? "proto" : "json",
  };
}

const CONTENT_TYPES: Record<WireProtocol, Record<StreamWire["codec"], string>> = {
  connect: { proto: connectProto, json: connectJson },
  grpc: { proto: grpcProto, json: grpcJson },
  "grpc-web": { proto: grpcWebProto, json: grpcWebJson },
};

/**
 * A response in progress: headers with the first frame, frames, then one end. Every method is a
 * no-op once the stream has closed (the client went away).
 */
export class StreamResponse {
  readonly #stream: ServerHttp2Stream;
  readonly #wire: StreamWire;
  #started = false;
  #ended = false;
  /** gRPC's trailers, sent when Node asks for them after the last frame. */
  #trailers: OutgoingHttpHeaders = {};

  constructor(stream: ServerHttp2Stream, wire: StreamWire) {
    this.#stream = stream;
    this.#wire = wire;
  }

  get #gone(): boolean {
    return this.#stream.destroyed || this.#stream.closed;
  }

  /** Writes a data frame, sending the headers first; false when the caller should wait for `onDrain`. */
  write(frame: Uint8Array): boolean {
    if (this.#ended || this.#gone) return true;
    if (!this.#started) this.#start();
    return this.#stream.write(frame);
  }

  /**
   * Calls `listener` once when the stream takes writes again. Not when it closes instead: whoever
   * writes learns of that from the stream's "close".
   */
  onDrain(listener: () => void): void {
    this.#stream.once("drain", listener);
  }

  /** Ends the response: successfully, or with the error in the protocol's form. Once. */
  end(error: ConnectError | undefined): void {
    if (this.#ended || this.#gone) return;
    this.#ended = true;
    const stream = this.#stream;
    switch (this.#wire.protocol) {
      case "connect": {
        if (!this.#started) this.#start();
        const json = JSON.stringify(endStreamToJson(new Headers(), error, undefined));
        stream.end(envelope(endStreamFlag, Buffer.from(json)));
        return;
      }
      case "grpc-web": {
        if (!this.#started) this.#start();
        stream.end(envelope(trailerFlag, trailerSerialize(setTrailerStatus(new Headers(), error))));
        return;
      }
      case "grpc": {
        const status = headersObject(setTrailerStatus(new Headers(), error));
        if (!this.#started) {
          // Trailers-only: the status travels with the headers, and the stream ends there.
          stream.respond({ ...this.#headers(), ...status }, { endStream: true });
          this.#started = true;
          return;
        }
        this.#trailers = status;
        stream.end();
        return;
      }
    }
  }

  #start(): void {
    this.#started = true;
    const grpc = this.#wire.protocol === "grpc";
    if (grpc) this.#stream.once("wantTrailers", () => this.#stream.sendTrailers(this.#trailers));
    this.#stream.respond(this.#headers(), { waitForTrailers: grpc });
  }

  #headers(): OutgoingHttpHeaders {
    return { ":status": 200, "content-type": CONTENT_TYPES[this.#wire.protocol][this.#wire.codec] };
  }
}

/** Headers as Node takes them for a response or trailers. */
export function headersObject(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}
