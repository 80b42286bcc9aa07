/**
 * One port for every client. In cleartext, browsers and curl speak HTTP/1.1 while gRPC clients
 * (grpc-go, grpcurl) open HTTP/2 with prior knowledge (h2c); Node's HTTP/2 server cannot fall back
 * to HTTP/1.1 without TLS, so the listener reads the first bytes of each connection and hands it to
 * the HTTP/2 server when they are the HTTP/2 connection preface, else to the HTTP/1.1 server. With
 * TLS, ALPN makes the choice (h2, else http/1.1).
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import { type ConnectionTracker, markHttp2 } from "./connections.ts";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

export interface ListenerOptions {
  handler: NodeHandler;
  tracker: ConnectionTracker;
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** Called for connection-level errors worth a debug line (resets, bad prefaces). */
  onClientError?: (err: Error) => void;
}

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** A connection that has not sent its first bytes by then is dropped. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 60_000;
/** Longer than the usual 60 s idle timeout of load balancers, so they close first. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Memory an HTTP/2 session may use, in MB: room for thousands of concurrent watch streams. */
const MAX_SESSION_MEMORY_MB = 64;

export interface Listener {
  readonly server: net.Server;
  /** Stops accepting; `done` runs once every connection has closed. */
  close(done: () => void): void;
}

export function createListener(opts: ListenerOptions): Listener {
  return opts.tls ? tlsListener(opts, opts.tls) : cleartextListener(opts);
}

function cleartextListener(opts: ListenerOptions): Listener {
  const { tracker } = opts;
  const h1 = http.createServer(
    { requestTimeout: 0, headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS },
    opts.handler,
  );
  const h2 = http2.createServer({ maxSessionMemory: MAX_SESSION_MEMORY_MB }, opts.handler);
  h2.on("session", (session) => tracker.addSession(session));
  for (const s of [h1, h2]) s.on("clientError", (err: Error) => opts.onClientError?.(err));
  h2.on("sessionError", (err: Error) => opts.onClientError?.(err));

  const server = net.createServer({ noDelay: true }, (socket) => {
    tracker.addSocket(socket);
    if (socket.destroyed) return;
    socket.on("error", (err) => opts.onClientError?.(err));
    const onSilent = () => socket.destroy();
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, onSilent);
    let head: Buffer = Buffer.alloc(0);
    const onReadable = () => {
      for (
        let chunk = socket.read() as Buffer | null;
        chunk !== null;
        chunk = socket.read() as Buffer | null
      ) {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      }
      const n = Math.min(head.length, PREFACE.length);
      if (n === 0) return;
      const looksHttp2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (looksHttp2 && head.length < PREFACE.length) return; // the preface is split: wait for the rest
      socket.removeListener("readable", onReadable);
      socket.setTimeout(0);
      socket.removeListener("timeout", onSilent);
      // Put the bytes back: both servers read what is buffered on the socket before anything new.
      socket.unshift(head);
      if (looksHttp2) {
        markHttp2(socket);
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
      }
    };
    socket.on("readable", onReadable);
  });
  // The HTTP/1.1 server never listens itself; this starts its header and keep-alive timers.
  server.once("listening", () => h1.emit("listening"));
  return {
    server,
    close(done) {
      server.close(() => done());
      h1.close(() => {});
    },
  };
}

function tlsListener(opts: ListenerOptions, tls: { cert: string | Buffer; key: string | Buffer }): Listener {
  const { tracker } = opts;
  const server = http2.createSecureServer(
    {
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      ALPNProtocols: ["h2", "http/1.1"],
      minVersion: "TLSv1.2",
      handshakeTimeout: FIRST_BYTES_TIMEOUT_MS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    },
    opts.handler,
  );
  server.on("secureConnection", (socket: TLSSocket) => tracker.addSocket(socket));
  server.on("session", (session) => tracker.addSession(session));
  server.on("tlsClientError", (err: Error) => opts.onClientError?.(err));
  server.on("sessionError", (err: Error) => opts.onClientError?.(err));
  return {
    server,
    close(done) {
      server.close(() => done());
    },
  };
}
