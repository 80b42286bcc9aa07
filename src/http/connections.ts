/**
 * Every connection the listener holds, so shutdown can be graceful: HTTP/2 sessions get a GOAWAY
 * and finish their streams; idle HTTP/1.1 connections close at once and busy ones right after their
 * response; whatever is still open when the grace period ends is destroyed.
 */
import type { ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";

export class ConnectionTracker {
  /** Accepted connections (TLS ones once their handshake is done), whatever runs on them. */
  readonly #sockets = new Set<Socket>();
  /** Connections serving HTTP/1.x, with the number of requests in progress on each. */
  readonly #http1 = new Map<Socket, number>();
  readonly #sessions = new Set<ServerHttp2Session>();
  /** HTTP/2 streams whose response is done while the client has not finished its request. */
  readonly #lingering = new Set<ServerHttp2Stream>();
  #draining = false;

  get draining(): boolean {
    return this.#draining;
  }

  get size(): number {
    return this.#sockets.size;
  }

  addSocket(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      this.#http1.delete(socket);
    });
    // An accepted connection that sent no request yet has nothing to finish.
    if (this.#draining) socket.destroy();
  }

  addSession(session: ServerHttp2Session): void {
    this.#sessions.add(session);
    session.once("close", () => this.#sessions.delete(session));
    if (this.#draining) session.close();
  }

  /** A stream that only waits for the rest of a request nobody reads; reset when draining. */
  lingering(stream: ServerHttp2Stream): void {
    if (this.#draining) {
      stream.destroy();
      return;
    }
    this.#lingering.add(stream);
    stream.once("close", () => this.#lingering.delete(stream));
  }

  /** Counts an HTTP/1.x request on its connection until its response is done. */
  http1Request(socket: Socket, response: { once(event: "close", fn: () => void): unknown }): void {
    this.#http1.set(socket, (this.#http1.get(socket) ?? 0) + 1);
    response.once("close", () => {
      const left = (this.#http1.get(socket) ?? 1) - 1;
      if (this.#sockets.has(socket)) this.#http1.set(socket, left);
      if (left === 0 && this.#draining) socket.end();
    });
  }

  /** Starts the graceful close of every connection. */
  drain(): void {
    this.#draining = true;
    for (const stream of this.#lingering) stream.destroy();
    for (const session of this.#sessions) session.close();
    for (const socket of this.#sockets) {
      const active = this.#http1.get(socket);
      // Idle HTTP/1.x, or a connection that has not sent its first request yet.
      if (active === 0 || (active === undefined && !isHttp2(socket))) socket.destroy();
    }
  }

  /** Ends everything now (the grace period is over). */
  destroyAll(): void {
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#sockets) socket.destroy();
  }
}

/** A connection handed to the HTTP/2 server (cleartext or ALPN h2). */
const http2Sockets = new WeakSet<object>();

export function markHttp2(socket: object): void {
  http2Sockets.add(socket);
}

function isHttp2(socket: Socket): boolean {
  return http2Sockets.has(socket) || (socket as { alpnProtocol?: unknown }).alpnProtocol === "h2";
}
