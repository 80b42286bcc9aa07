/**
 * Answers to HTTP/1.x input the server cannot serve: a request line whose version is not 1.x, and
 * what Node's parser rejects (a malformed request line or header, headers too large, headers that
 * never finish, bad chunked framing). Each gets a status naming the problem and the connection is
 * closed, as Node's own default does when nothing else listens; only the connection is affected.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** How long a refused connection may take to flush its answer before it is cut. */
const FLUSH_MS = 2000;

/**
 * A request line with a version other than 1.x on an HTTP/1.1 connection: no version at all (which
 * llhttp reads as HTTP/0.9) gets 400, a later version 505. Answered as HTTP/1.1, then closed.
 */
export function refuseHttpVersion(req: IncomingMessage, res: ServerResponse): void {
  const version = `${req.httpVersionMajor}.${req.httpVersionMinor}`;
  const [status, message] =
    req.httpVersionMajor === 0
      ? [400, "the request line has no HTTP version; this server speaks HTTP/1.1 and HTTP/2"]
      : [
          505,
          `HTTP/${version} is not served on an HTTP/1.1 connection; ` +
            "HTTP/2 starts with its connection preface (h2c with prior knowledge) or is negotiated by TLS ALPN",
        ];
  req.resume();
  const body = `${message}\n`;
  res.writeHead(status, {
    connection: "close",
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * Answers what Node's HTTP/1.1 parser reported on `socket` (in place of Node's default answer,
 * which a "clientError" listener turns off), then closes the connection. Nothing is written when
 * the connection is gone or a response is already on its way (`current` has sent its headers): the
 * bytes would land in the middle of it.
 */
export function answerClientError(
  err: NodeJS.ErrnoException,
  socket: Duplex,
  current: ServerResponse | undefined,
  headersTimeoutMs: number,
): void {
  if (answered.has(socket)) return; // the parser keeps failing on what still arrives
  answered.add(socket);
  const answer = clientErrorAnswer(err, headersTimeoutMs);
  const midResponse = current?.headersSent === true && !current.writableFinished;
  if (answer === undefined || midResponse || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, message] = answer;
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // The client closes once it has read the answer; one that does not is cut off.
  setTimeout(() => socket.destroy(), FLUSH_MS).unref();
}

const answered = new WeakSet<Duplex>();

/** Status, reason phrase and message for a parser error; undefined when there is nobody to answer. */
function clientErrorAnswer(
  err: NodeJS.ErrnoException,
  headersTimeoutMs: number,
): [number, string, string] | undefined {
  switch (err.code) {
    case "ECONNRESET":
    case "EPIPE":
    case "ETIMEDOUT":
      return undefined;
    case "HPE_HEADER_OVERFLOW":
      return [431, "Request Header Fields Too Large", "the request headers are larger than the server takes"];
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return [413, "Content Too Large", "the chunk extensions of the request body are too large"];
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [
        408,
        "Request Timeout",
        `the request headers did not arrive within ${headersTimeoutMs / 1000} s`,
      ];
    case "HPE_INVALID_EOF_STATE":
      return [400, "Bad Request", "the client ended the connection in the middle of a request"];
    default: {
      const reason = (err as { reason?: unknown }).reason;
      const detail = typeof reason === "string" && reason !== "" ? reason : err.message;
      return [400, "Bad Request", `malformed HTTP/1.1 request: ${detail}${err.code ? ` (${err.code})` : ""}`];
    }
  }
}
