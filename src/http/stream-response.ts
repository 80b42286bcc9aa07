/**
 * The response of a server-streaming call whose frames the edge writes itself (WatchLock's shared
 * frames, see rpc/fast-methods.ts), on a bare HTTP/2 stream or on a Node response (HTTP/1.1, or
 * HTTP/2 through Node's compatibility layer), in each of the three protocols. Their data frames
 * are the same 5-byte envelope; they differ in how a stream ends:
 *
 * - Connect: a last envelope flagged end-of-stream (0x02) holding JSON: `{}`, the error, metadata;
 * - gRPC: HTTP/2 trailers with `grpc-status`; an error before any message is "trailers-only";
 * - gRPC-Web: a last envelope flagged trailers (0x80) holding them as HTTP/1 header lines.
 *
 * Connect's protocol packages supply every piece (content types, end-stream JSON, trailer status),
 * so the bytes are the ones Connect's own handlers write.
 */
import type { ServerResponse } from "node:http";
import type { Http2ServerResponse, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { endStreamFlag, endStreamToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { envelope } from "../rpc/envelope.ts";
import type { NodeResponse } from "./listener.ts";

export type StreamProtocol = "connect" | "grpc" | "grpc-web";

/** Where the bytes go: a bare HTTP/2 stream or a Node response. */
interface Sink {
  readonly gone: boolean;
  /** What groups writes for one socket write per event-loop turn (the connection). */
  readonly connection: object;
  head(headers: OutgoingHttpHeaders, waitForTrailers: boolean, endStream: boolean): void;
  write(bytes: Uint8Array): boolean;
  once(event: "drain" | "close", listener: () => void): void;
  off(event: "drain" | "close", listener: () => void): void;
  end(bytes: Uint8Array | undefined, trailers: OutgoingHttpHeaders | undefined): void;
}

/** A response in progress: headers with the first frame, frames, then one end. No-ops once the client left. */
export class StreamResponse {
  readonly #sink: Sink;
  readonly #protocol: StreamProtocol;
  /** The response headers, until they are sent. */
  #header: Headers | undefined;
  #started = false;
  #ended = false;

  private constructor(sink: Sink, protocol: StreamProtocol, header: Headers) {
    this.#sink = sink;
    this.#protocol = protocol;
    this.#header = header;
  }

  static onStream(stream: ServerHttp2Stream, protocol: StreamProtocol, header: Headers): StreamResponse {
    return new StreamResponse(new BareStream(stream), protocol, header);
  }

  static onResponse(res: NodeResponse, protocol: StreamProtocol, header: Headers): StreamResponse {
    return new StreamResponse(new NodeResponseSink(res), protocol, header);
  }

  get connection(): object {
    return this.#sink.connection;
  }

  get gone(): boolean {
    return this.#sink.gone;
  }

  /** Sends the headers now (before any frame); later writes and the end follow them. */
  start(): void {
    if (this.#started || this.#ended || this.#sink.gone) return;
    this.#started = true;
    this.#sink.head(this.#headers(), this.#protocol === "grpc", false);
  }

  /** Refuses the call with a bare HTTP status (405, 415), as Connect's handlers do; before anything else. */
  refuse(status: number): void {
    if (this.#started || this.#ended || this.#sink.gone) return;
    this.#started = true;
    this.#ended = true;
    this.#sink.head({ ":status": status }, false, true);
  }

  /** Writes a data frame; false when the caller should wait for `onDrain`. */
  write(frame: Uint8Array): boolean {
    if (this.#ended || this.#sink.gone) return true;
    this.start();
    return this.#sink.write(frame);
  }

  /**
   * Calls `listener` once, when the stream takes writes again or closes: whoever waits for the
   * one learns of the other (a client that leaves while the writer waits must not strand it).
   */
  onDrain(listener: () => void): void {
    const sink = this.#sink;
    const done = () => {
      sink.off("drain", done);
      sink.off("close", done);
      listener();
    };
    sink.once("drain", done);
    sink.once("close", done);
  }

  /** Ends the response: successfully, or with the error, with `trailers`, in the protocol's form. Once. */
  end(error: ConnectError | undefined, trailers: Headers): void {
    if (this.#ended || this.#sink.gone) return;
    // The headers go first even when the call ends before any message (an error, an empty stream).
    if (this.#protocol !== "grpc") this.start();
    this.#ended = true;
    switch (this.#protocol) {
      case "connect": {
        const json = JSON.stringify(endStreamToJson(trailers, error, undefined));
        this.#sink.end(envelope(endStreamFlag, Buffer.from(json)), undefined);
        return;
      }
      case "grpc-web": {
        this.#sink.end(envelope(trailerFlag, trailerSerialize(setTrailerStatus(trailers, error))), undefined);
        return;
      }
      case "grpc": {
        const status = headersObject(setTrailerStatus(trailers, error));
        if (!this.#started) {
          // Trailers-only: the status travels with the headers, and the stream ends there.
          this.#started = true;
          this.#sink.head({ ...this.#headers(), ...status }, false, true);
          return;
        }
        this.#sink.end(undefined, status);
        return;
      }
    }
  }

  #headers(): OutgoingHttpHeaders {
    const headers: OutgoingHttpHeaders = { ":status": 200, ...headersObject(this.#header ?? new Headers()) };
    this.#header = undefined;
    return headers;
  }
}

/** A bare HTTP/2 stream. Classes rather than closures: thousands are open at once. */
class BareStream implements Sink {
  readonly #stream: ServerHttp2Stream;
  #trailers: OutgoingHttpHeaders = {};

  constructor(stream: ServerHttp2Stream) {
    this.#stream = stream;
    // A reset stream reports an error; "close" has it covered.
    stream.on("error", ignore);
  }

  get gone(): boolean {
    return this.#stream.destroyed || this.#stream.closed;
  }

  get connection(): object {
    return this.#stream.session ?? this.#stream;
  }

  head(headers: OutgoingHttpHeaders, waitForTrailers: boolean, endStream: boolean): void {
    if (waitForTrailers) this.#stream.once("wantTrailers", this.#sendTrailers);
    this.#stream.respond(headers, { waitForTrailers, endStream });
  }

  readonly #sendTrailers = (): void => this.#stream.sendTrailers(this.#trailers);

  write(bytes: Uint8Array): boolean {
    return this.#stream.write(bytes);
  }

  once(event: "drain" | "close", listener: () => void): void {
    this.#stream.once(event, listener);
  }

  off(event: "drain" | "close", listener: () => void): void {
    this.#stream.off(event, listener);
  }

  end(bytes: Uint8Array | undefined, trailers: OutgoingHttpHeaders | undefined): void {
    if (trailers !== undefined) this.#trailers = trailers;
    if (bytes === undefined) this.#stream.end();
    else this.#stream.end(bytes);
  }
}

/** A Node response: HTTP/1.1, or HTTP/2 through Node's compatibility layer. */
class NodeResponseSink implements Sink {
  readonly #res: ServerResponse;

  constructor(res: NodeResponse) {
    this.#res = res as ServerResponse;
  }

  get gone(): boolean {
    return this.#res.destroyed || this.#res.writableEnded;
  }

  get connection(): object {
    return (this.#res as unknown as Http2ServerResponse).stream?.session ?? this.#res.socket ?? this.#res;
  }

  head(headers: OutgoingHttpHeaders, _waitForTrailers: boolean, endStream: boolean): void {
    const { ":status": status, ...rest } = headers;
    this.#res.writeHead(Number(status), rest as Record<string, string>);
    if (endStream) this.#res.end();
  }

  write(bytes: Uint8Array): boolean {
    return this.#res.write(bytes);
  }

  once(event: "drain" | "close", listener: () => void): void {
    this.#res.once(event, listener);
  }

  off(event: "drain" | "close", listener: () => void): void {
    this.#res.off(event, listener);
  }

  end(bytes: Uint8Array | undefined, trailers: OutgoingHttpHeaders | undefined): void {
    if (trailers !== undefined) this.#res.addTrailers(trailers as Record<string, string>);
    if (bytes === undefined) this.#res.end();
    else this.#res.end(bytes);
  }
}

function ignore(): void {}

/** Headers as Node takes them for a response or trailers. */
export function headersObject(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}
