/**
 * Reading the one request message of a call served below Connect (the WatchLock and GetState
 * endpoints): the body up to the message limit, and the payload of its single envelope, with the
 * same kind of errors Connect gives for a malformed request.
 */
import type { Readable } from "node:stream";
import { CanceledError, InvalidArgumentError, ResourceExhaustedError } from "../errors.ts";
import { COMPRESSED_FLAG } from "../rpc/envelope.ts";

/**
 * The request body, refused once it holds more than a message of `maxMessageBytes` and its
 * `framing` bytes (5 for an envelope, 0 for Connect's unary body). `method` names the RPC in errors.
 * When `signal` aborts first (the deadline, a stalled body, shutdown), fails with its reason.
 */
export function readBody(
  body: Readable,
  method: string,
  maxMessageBytes: number,
  framing: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  const limit = maxMessageBytes + framing;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("close", onClose);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      cleanup();
      reject(signal?.reason);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      cleanup();
      body.resume();
      reject(
        new ResourceExhaustedError(
          `the ${method} request is larger than the ${maxMessageBytes}-byte message limit`,
          maxMessageBytes,
        ),
      );
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    };
    const onClose = () => {
      cleanup();
      reject(new CanceledError("the client closed the stream before sending its request"));
    };
    body.on("data", onData);
    body.once("end", onEnd);
    body.once("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The payload of the body's only message envelope (gRPC, gRPC-Web, Connect streaming). */
export function singleMessage(body: Buffer, method: string): Uint8Array {
  if (body.byteLength < 5) {
    throw new InvalidArgumentError(
      `the ${method} request must be one enveloped message, got ${body.byteLength} bytes`,
    );
  }
  const flags = body[0] as number;
  const length = body.readUInt32BE(1);
  if (flags & COMPRESSED_FLAG) {
    throw new InvalidArgumentError(
      `the ${method} request message is compressed, but the request names no encoding`,
    );
  }
  if (flags !== 0) {
    throw new InvalidArgumentError(`the ${method} request message has unknown flags 0x${flags.toString(16)}`);
  }
  if (5 + length !== body.byteLength) {
    throw new InvalidArgumentError(
      5 + length > body.byteLength
        ? `the ${method} request message is cut short: ${body.byteLength - 5} of ${length} bytes`
        : `${method} takes exactly one request message, got more`,
    );
  }
  return body.subarray(5);
}
