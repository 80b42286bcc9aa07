/**
 * One port for every client. In cleartext, browsers and curl speak HTTP/1.1 while gRPC clients
 * (grpc-go, grpcurl) open HTTP/2 with prior knowledge (h2c); Node's HTTP/2 server cannot fall back
 * to HTTP/1.1 without TLS, so the listener reads the first bytes of each connection and hands it to
 * the HTTP/2 server when they are the HTTP/2 connection preface, else to the HTTP/1.1 server. With
 * TLS, ALPN makes the choice (h2, else http/1.1).
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, {
  type Http2ServerRequest,
  type Http2ServerResponse,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import net, { type Socket } from "node:net";
import type { Duplex } from "node:stream";
import tls, { type TLSSocket } from "node:tls";
import { type ConnectionTracker, markHttp2 } from "./connections.ts";
import { answerClientError, refuseHttpVersion } from "./http1-refusals.ts";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

export interface ListenerOptions {
  handler: NodeHandler;
  /**
   * Offered every HTTP/2 stream first, before it becomes a request/response pair for `handler`;
   * returns true when it has taken the stream.
   */
  onStream?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;
  tracker: ConnectionTracker;
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** How long an HTTP/1.1 request's headers may take to arrive. Default 60 s. */
  headersTimeoutMs?: number | undefined;
  /** Called for connection-level errors worth a debug line (resets, bad prefaces, malformed requests). */
  onClientError?: (err: Error) => void;
  /** Called when serving a stream or request threw: a bug, logged; only that request is ended. */
  onHandlerError?: (err: unknown) => void;
}

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** A connection that has not sent its first bytes by then is dropped. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 60_000;
/** Node checks header deadlines on a timer; at most this often, and a few times per timeout. */
const MAX_HEADERS_CHECK_INTERVAL_MS = 15_000;
const MIN_HEADERS_CHECK_INTERVAL_MS = 50;
/** Longer than the usual 60 s idle timeout of load balancers, so they close first. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Memory an HTTP/2 session may use, in MB: room for thousands of concurrent watch streams. */
const MAX_SESSION_MEMORY_MB = 64;

export interface Listener {
  readonly server: net.Server | tls.Server;
  /** Stops accepting; `done` runs once every connection has closed. */
  close(done: () => void): void;
}

export function createListener(opts: ListenerOptions): Listener {
  const headersTimeout = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  /** The response each HTTP/1.1 connection is on, to know whether a parse error can still be answered. */
  const responses = new WeakMap<Duplex, ServerResponse>();
  const h1 = http.createServer(
    {
      requestTimeout: 0,
      headersTimeout,
      connectionsCheckingInterval: Math.max(
        MIN_HEADERS_CHECK_INTERVAL_MS,
        Math.min(MAX_HEADERS_CHECK_INTERVAL_MS, Math.floor(headersTimeout / 4)),
      ),
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      responses.set(req.socket, res);
      // llhttp takes a request line without a version as HTTP/0.9, and "HTTP/2.0" as a version.
      if (req.httpVersionMajor !== 1) {
        refuseHttpVersion(req, res);
        return;
      }
      handle(opts, req, res);
    },
  );
  const h2 = http2Server(opts);
  const serve = (socket: Socket, http2: boolean) => {
    if (http2) {
      markHttp2(socket);
      h2.emit("connection", socket);
    } else {
      // As Node's own HTTP server has it: a client that half-closes mid-request can still be answered.
      socket.allowHalfOpen = true;
      h1.emit("connection", socket);
    }
  };
  const server = opts.tls ? tlsFront(opts, opts.tls, serve) : cleartextFront(opts, serve);
  // A listener here replaces Node's own answer (400 and close), so this one answers in its place.
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    opts.onClientError?.(err);
    answerClientError(err, socket, responses.get(socket), headersTimeout);
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

/** HTTP/2 sessions, whose streams go to `onStream` first, else to `handler` as request and response. */
function http2Server(o: ListenerOptions): http2.Http2Server {
  // No "request" listener on this one: that would make Node wrap every stream in a request and
  // response object, which the streams `onStream` takes do not need (thousands of watch streams).
  const raw = http2.createServer({ maxSessionMemory: MAX_SESSION_MEMORY_MB });
  // Node builds those objects for the streams of a server that has a "request" listener: the
  // remaining streams are handed to this one, which never listens itself.
  const compat = http2.createServer({}, (req, res) => handle(o, req, res));
  raw.on("stream", (stream, headers, flags, rawHeaders) => {
    try {
      if (o.onStream?.(stream, headers)) return;
      compat.emit("stream", stream, headers, flags, rawHeaders);
    } catch (err) {
      // A throw here would end the process: it ends this stream only.
      o.onHandlerError?.(err);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  });
  raw.on("session", (session) => o.tracker.addSession(session));
  raw.on("sessionError", (err: Error) => o.onClientError?.(err));
  return raw;
}

/** Runs the handler; a synchronous throw ends this request only. */
function handle(o: ListenerOptions, req: NodeRequest, res: NodeResponse): void {
  try {
    o.handler(req, res);
  } catch (err) {
    o.onHandlerError?.(err);
    res.destroy();
  }
}

type Serve = (socket: Socket, http2: boolean) => void;

/**
 * Cleartext: Node's HTTP/2 server cannot fall back to HTTP/1.1 without TLS, so the first bytes of
 * each connection decide: the HTTP/2 connection preface, else HTTP/1.1.
 */
function cleartextFront(opts: ListenerOptions, serve: Serve): net.Server {
  const { tracker } = opts;
  return net.createServer({ noDelay: true }, (socket) => {
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
      serve(socket, looksHttp2);
    };
    socket.on("readable", onReadable);
  });
}

/** TLS: ALPN decides, h2 else HTTP/1.1 (also for clients that offer no ALPN). */
function tlsFront(
  opts: ListenerOptions,
  tlsOpts: { cert: string | Buffer; key: string | Buffer },
  serve: Serve,
): tls.Server {
  const server = tls.createServer({
    cert: tlsOpts.cert,
    key: tlsOpts.key,
    ALPNProtocols: ["h2", "http/1.1"],
    minVersion: "TLSv1.2",
    handshakeTimeout: FIRST_BYTES_TIMEOUT_MS,
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    opts.tracker.addSocket(socket);
    if (socket.destroyed) return;
    socket.on("error", (err) => opts.onClientError?.(err));
    serve(socket, socket.alpnProtocol === "h2");
  });
  server.on("tlsClientError", (err: Error) => opts.onClientError?.(err));
  return server;
}
