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
  end(bytes: Uint8Array | undefined, trailers: OutgoingHttpHeaders | undefined): void;
}

/** A response in progress: headers with the first frame, frames, then one end. No-ops once the client left. */
export class StreamResponse {
  readonly #sink: Sink;
  readonly #protocol: StreamProtocol;
  readonly #header: Headers;
  #started = false;
  #ended = false;

  private constructor(sink: Sink, protocol: StreamProtocol, header: Headers) {
    this.#sink = sink;
    this.#protocol = protocol;
    this.#header = header;
  }

  static onStream(stream: ServerHttp2Stream, protocol: StreamProtocol, header: Headers): StreamResponse {
    return new StreamResponse(bareStream(stream), protocol, header);
  }

  static onResponse(res: NodeResponse, protocol: StreamProtocol, header: Headers): StreamResponse {
    return new StreamResponse(nodeResponse(res), protocol, header);
  }

  get connection(): object {
    return this.#sink.connection;
  }

  get gone(): boolean {
    return this.#sink.gone;
  }

  onClose(listener: () => void): void {
    this.#sink.once("close", listener);
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

  /** Calls `listener` once the stream takes writes again (not when it closes instead). */
  onDrain(listener: () => void): void {
    this.#sink.once("drain", listener);
  }

  /** Ends the response: successfully, or with the error, with `trailers`, in the protocol's form. Once. */
  end(error: ConnectError | undefined, trailers: Headers): void {
    if (this.#ended || this.#sink.gone) return;
    this.#ended = true;
    switch (this.#protocol) {
      case "connect": {
        this.start();
        const json = JSON.stringify(endStreamToJson(trailers, error, undefined));
        this.#sink.end(envelope(endStreamFlag, Buffer.from(json)), undefined);
        return;
      }
      case "grpc-web": {
        this.start();
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
    return { ":status": 200, ...headersObject(this.#header) };
  }
}

function bareStream(stream: ServerHttp2Stream): Sink {
  // A reset stream reports an error; "close" has it covered.
  stream.on("error", () => {});
  let trailers: OutgoingHttpHeaders = {};
  return {
    get gone() {
      return stream.destroyed || stream.closed;
    },
    connection: stream.session ?? stream,
    head(headers, waitForTrailers, endStream) {
      if (waitForTrailers) stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      stream.respond(headers, { waitForTrailers, endStream });
    },
    write: (bytes) => stream.write(bytes),
    once: (event, listener) => stream.once(event, listener),
    end(bytes, t) {
      if (t !== undefined) trailers = t;
      if (bytes === undefined) stream.end();
      else stream.end(bytes);
    },
  };
}

function nodeResponse(res: NodeResponse): Sink {
  const r = res as ServerResponse;
  return {
    get gone() {
      return res.destroyed || res.writableEnded;
    },
    connection: (res as Http2ServerResponse).stream?.session ?? res.socket ?? res,
    head(headers, _waitForTrailers, endStream) {
      const { ":status": status, ...rest } = headers;
      r.writeHead(Number(status), rest as Record<string, string>);
      if (endStream) r.end();
    },
    write: (bytes) => r.write(bytes),
    once: (event, listener) => void r.once(event, listener),
    end(bytes, trailers) {
      if (trailers !== undefined) r.addTrailers(trailers as Record<string, string>);
      if (bytes === undefined) r.end();
      else r.end(bytes);
    },
  };
}

/** Headers as Node takes them for a response or trailers. */
export function headersObject(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}
