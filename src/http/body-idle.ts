/**
 * The request body idle timeout for requests served by plain HTTP routes (RPC bodies are read
 * through abortable-body.ts, which times the same rule per read): a client that stops sending
 * its body while the server waits for it must not hold the request, its handler and its connection
 * or stream for good. Node has no such timeout: `requestTimeout` bounds the whole request (uploads
 * of any size must pass), `headersTimeout` only the headers.
 *
 * Only time the server spends waiting counts. A body is a Readable whose `_read` is called when its
 * reader wants more and whose `push` delivers what arrived; the clock runs from a `_read` until the
 * next `push`. A reader that is busy (a slow registry upload with the body held back by flow
 * control) does not call `_read`, so a client held back that way is never timed out. Node gives no
 * event for either moment without changing how the stream flows (a "data" listener would start it
 * flowing), so the two methods are wrapped on the one stream instance, and restored at its end.
 */
import { constants, type ServerHttp2Stream } from "node:http2";
import type { Readable } from "node:stream";
import { DeadlineExceededError } from "../errors.ts";

export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 30_000;

/** Once the call has been told, time it has to answer before its connection or stream is freed. */
const RELEASE_AFTER_MS = 2000;

export interface BodyIdleHandlers {
  /** The body stalled: the call should stop waiting and answer with `err`. */
  onIdle(err: DeadlineExceededError): void;
  /** Frees what the stalled body holds (resets the stream, closes the connection); runs a moment after `onIdle`. */
  release(): void;
}

/** The error a stalled body ends its request with. */
export function bodyIdleError(idleMs: number): DeadlineExceededError {
  return new DeadlineExceededError(
    `no request body bytes arrived for ${seconds(idleMs)} while the server waited for them ` +
      "(the body idle timeout); the request is ended",
  );
}

/** Frees a stalled body's stream or connection once the call has had time to answer. */
export function releaseLater(release: () => void): void {
  setTimeout(release, RELEASE_AFTER_MS).unref();
}

/** Watches `body` until it ends or closes; `handlers` run once if it stalls for `idleMs`. */
export function watchBodyIdle(body: Readable, idleMs: number, handlers: BodyIdleHandlers): void {
  if (body.readableEnded || body.destroyed) return;
  /** When the reader asked for more and nothing has come since; undefined while not waiting. */
  let waitingSince: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let done = false;

  const arm = (ms: number) => {
    timer = setTimeout(check, ms);
    timer.unref();
  };
  const check = () => {
    timer = undefined;
    if (done || waitingSince === undefined) return;
    const left = idleMs - (performance.now() - waitingSince);
    if (left > 0) {
      arm(left);
      return;
    }
    stop();
    handlers.onIdle(bodyIdleError(idleMs));
    releaseLater(handlers.release);
  };
  const stop = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    body.off("end", stop);
    body.off("close", stop);
    restore(body, "_read", read, ownRead);
    restore(body, "push", push, ownPush);
  };

  const read = body._read;
  const push = body.push;
  const ownRead = Object.hasOwn(body, "_read");
  const ownPush = Object.hasOwn(body, "push");
  body._read = function (this: Readable, size: number) {
    if (waitingSince === undefined) {
      waitingSince = performance.now();
      if (timer === undefined) arm(idleMs);
    }
    read.call(this, size);
  };
  body.push = function (this: Readable, chunk: unknown, encoding?: BufferEncoding) {
    waitingSince = undefined;
    if (chunk === null) stop();
    return push.call(this, chunk, encoding);
  };
  body.once("end", stop);
  body.once("close", stop);
}

/**
 * Frees an HTTP/2 stream whose request body stalled: reset with NO_ERROR once the response is
 * complete (RFC 9113 §8.1 lets a server stop a request it no longer needs that way), else CANCEL.
 */
export function resetStalledStream(stream: ServerHttp2Stream): void {
  if (stream.destroyed || stream.readableEnded) return;
  // destroy() resets with NO_ERROR at once (close() may hold the RST_STREAM back until more is sent).
  if (stream.writableFinished) stream.destroy();
  else stream.close(constants.NGHTTP2_CANCEL);
}

/** Puts a wrapped method back: the instance's own, or none so that the prototype's applies again. */
function restore<K extends "_read" | "push">(
  body: Readable,
  key: K,
  original: Readable[K],
  own: boolean,
): void {
  if (own) body[key] = original;
  else delete (body as Partial<Readable>)[key];
}

function seconds(ms: number): string {
  return `${ms / 1000} s`;
}
