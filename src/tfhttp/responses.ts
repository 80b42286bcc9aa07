import type { Http2ServerResponse } from "node:http2";
import { hasUnreadBody } from "./request-body.ts";
import type { HttpRequest, HttpResponse } from "./types.ts";

const JSON_TYPE = "application/json";
/** Bytes of an unread body drained after an early answer, so the client reads it instead of a reset. */
const LINGER_BYTES = 256 * 1024;
const LINGER_MS = 2_000;

export interface Reply {
  status: number;
  body?: Uint8Array | string | undefined;
  headers?: Record<string, string> | undefined;
  /** For the audit record: the state version and digest read or written, the lock ID taken or released. */
  facts?: { version?: number | undefined; digest?: string | undefined; lockId?: string | undefined };
}

export function jsonReply(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return { status, body, headers: { "content-type": JSON_TYPE, ...headers } };
}

/**
 * Writes a complete response. When the request body was left unread (an early 4xx, a body over its
 * limit), an HTTP/1.1 connection discards at most LINGER_BYTES more of it, as Go's server does, so a
 * client still sending reads the answer instead of a reset and the connection stays usable; past
 * that it is closed. Node would otherwise read and discard an unbounded body. An HTTP/2 stream is
 * simply closed.
 */
export function send(req: HttpRequest, res: HttpResponse, reply: Reply): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const body = typeof reply.body === "string" ? Buffer.from(reply.body, "utf8") : reply.body;
  const unread = hasUnreadBody(req);
  res.statusCode = reply.status;
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
  res.setHeader("content-length", String(body?.byteLength ?? 0));
  if (body && body.byteLength > 0 && req.method !== "HEAD") res.end(body);
  else res.end();
  if (unread && req.httpVersionMajor < 2) lingerThenClose(req);
  else if (unread) (res as Http2ServerResponse).stream?.close();
}

function lingerThenClose(req: HttpRequest): void {
  const socket = req.socket;
  let drained = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off("data", onData);
  };
  const close = () => {
    stop();
    socket.destroy();
  };
  const onData = (chunk: Buffer) => {
    drained += chunk.byteLength;
    if (drained > LINGER_BYTES) close();
  };
  const timer = setTimeout(close, LINGER_MS);
  timer.unref();
  req.on("data", onData);
  req.once("end", stop);
  req.resume();
}
