/**
 * A way around the per-message pipeline of a Connect response stream, for the one stream that
 * needs it: WatchLock. Connect runs every message of every stream through its own chain of async
 * stages (serialize, envelope, compress, join, write); a lock event reaching 10,000 watchers ran
 * that chain 10,000 times at once. The data frames of Connect streaming, gRPC and gRPC-Web are the
 * same 5-byte envelope, so an event is encoded once per codec and the same bytes are written to
 * every stream. Connect still opens each response (headers, with its first message) and ends it
 * (trailers, or the end-of-stream message with any error).
 */
import { createContextKey } from "@connectrpc/connect";

/** The body of a response in progress, below Connect. */
export interface RawResponse {
  /**
   * The largest payload that may be written here: smaller than the size from which Connect
   * compresses (so the frame is the same whatever compression the stream negotiated) and within
   * the write limit. Larger messages must go through Connect.
   */
  readonly maxPayloadBytes: number;
  /**
   * Appends bytes to the body. Only while Connect waits for the handler's next message, after it
   * has written at least one (so the headers are out and nothing of Connect's is queued behind).
   * Returns false when the caller should wait for `drained()` before writing more.
   */
  write(bytes: Uint8Array): boolean;
  /** Settles when the body can take more, or the response has closed. */
  drained(): Promise<void>;
}

/** Set by the HTTP edge for every RPC; absent when the service runs elsewhere (in-memory). */
export const rawResponseKey = createContextKey<RawResponse | undefined>(undefined, {
  description: "raw response body",
});

/** The codecs a stream's data frames can be in, from the request's content type. */
export type FrameCodec = "proto" | "json";

/** `application/connect+json`, `application/grpc+json`, `application/grpc-web+json` (maybe with a charset). */
const JSON_CONTENT_TYPE = /^application\/(?:connect|grpc|grpc-web)\+json(?:;|$)/i;

export function frameCodec(contentType: string | null): FrameCodec {
  return contentType !== null && JSON_CONTENT_TYPE.test(contentType.trim()) ? "json" : "proto";
}

/** A data frame: flags 0 (uncompressed), the payload's length (big-endian uint32), the payload. */
export function dataFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + payload.byteLength);
  frame[0] = 0;
  frame.writeUInt32BE(payload.byteLength, 1);
  frame.set(payload, 5);
  return frame;
}
