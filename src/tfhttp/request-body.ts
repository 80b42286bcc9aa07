import { createHash } from "node:crypto";
import { CanceledError, InvalidArgumentError, isTfstateError, ResourceExhaustedError } from "../errors.ts";
import type { HttpRequest } from "./types.ts";

const BASE64_MD5 = /^[A-Za-z0-9+/]{22}==$/;

function tooLarge(what: string, limit: number): ResourceExhaustedError {
  return new ResourceExhaustedError(`${what} is larger than the limit of ${limit} bytes`, limit);
}

/**
 * Reads a request body into memory, never more than `limit` bytes: a declared Content-Length over
 * the limit is refused before reading, and a streamed body stops at the first chunk past it.
 * Compressed bodies are refused (the CLI never sends them), and Content-MD5, when present, must be
 * the base64 MD5 of exactly these bytes (RFC 1864), as OpenTofu sends it on every body.
 */
export async function readLimitedBody(req: HttpRequest, limit: number, what: string): Promise<Buffer> {
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") {
    throw new InvalidArgumentError(
      `Content-Encoding ${JSON.stringify(encoding)} is not supported; send the ${what} uncompressed`,
    );
  }
  const declared = req.headers["content-length"];
  if (declared !== undefined && /^[0-9]+$/.test(declared) && Number(declared) > limit) {
    throw tooLarge(`${what} (Content-Length ${declared})`, limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  // destroyOnReturn: false keeps the connection open to answer 413 when reading stops early.
  try {
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
      size += buf.byteLength;
      if (size > limit) throw tooLarge(what, limit);
      chunks.push(buf);
    }
  } catch (err) {
    if (isTfstateError(err)) throw err;
    // The client went away or the edge ended the body (malformed, or idle too long): it has its answer.
    throw new CanceledError(`the ${what} was not received in full (${size} bytes arrived)`, { cause: err });
  }
  const body = Buffer.concat(chunks, size);
  checkContentMd5(req.headers["content-md5"], body);
  return body;
}

export function checkContentMd5(header: string | string[] | undefined, body: Uint8Array): void {
  if (header === undefined) return;
  if (Array.isArray(header)) {
    throw new InvalidArgumentError(`Content-MD5 is given ${header.length} times; send it once`);
  }
  const claimed = header.trim();
  if (!BASE64_MD5.test(claimed)) {
    throw new InvalidArgumentError(
      `Content-MD5 ${JSON.stringify(header)} is malformed: it must be the base64 encoding of a 16-byte MD5 digest`,
    );
  }
  const actual = createHash("md5").update(body).digest("base64");
  if (actual !== claimed) {
    throw new InvalidArgumentError(
      `Content-MD5 ${claimed} does not match the body (${body.byteLength} bytes with MD5 ${actual}); ` +
        "the body was changed or cut short on the way",
    );
  }
}

/** True when the client may still be sending a body we have not read. */
export function hasUnreadBody(req: HttpRequest): boolean {
  if (req.complete) return false;
  if ("stream" in req) return !req.stream.endAfterHeaders && !req.stream.readableEnded;
  const length = req.headers["content-length"];
  if (length !== undefined) return length !== "0";
  return req.headers["transfer-encoding"] !== undefined;
}
