import type { HandlerContext } from "@connectrpc/connect";
import { ResourceExhaustedError } from "../errors.ts";

/** Which limit a state passed; mirrors tfstate.v1.SizeLimitKind without importing generated code here. */
export type SizeLimit = "max_state_size" | "unary_message";

/** Chunks of DownloadState and the chunk size clients are told to use for UploadState. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

/**
 * Room left in a unary message for everything but the state bytes (metadata, framing). Generous,
 * so a state just under the limit never fails in the serializer with a detail-less error instead.
 */
const UNARY_OVERHEAD_BYTES = 16 * 1024;

/** A state too large for one call, with what the client needs to pick a remedy. */
export class StateSizeError extends ResourceExhaustedError {
  /** Bytes of the state as far as known (for a stopped upload: received so far). */
  readonly size: number;
  readonly kind: SizeLimit;
  constructor(message: string, limit: number, size: number, kind: SizeLimit) {
    super(message, limit);
    this.size = size;
    this.kind = kind;
  }
}

/**
 * The largest state one unary message can carry to this caller. JSON carries bytes as base64
 * (4 characters per 3 bytes), so a JSON caller gets three quarters of the binary limit.
 */
export function unaryStateLimit(
  maxMessageBytes: number,
  ctx: Pick<HandlerContext, "requestHeader" | "url">,
): number {
  const room = Math.max(0, maxMessageBytes - UNARY_OVERHEAD_BYTES);
  return usesJson(ctx) ? Math.floor((room * 3) / 4) : room;
}

function usesJson(ctx: Pick<HandlerContext, "requestHeader" | "url">): boolean {
  const contentType = ctx.requestHeader.get("content-type");
  if (contentType !== null) return /json/i.test(contentType);
  // Connect GET carries the codec in the query string instead of a content type.
  try {
    return new URL(ctx.url, "http://localhost").searchParams.get("encoding") === "json";
  } catch {
    return false;
  }
}

/** Refuses a state that a unary response cannot carry, pointing at the streaming RPC. */
export function checkUnaryState(what: string, size: number, limit: number): void {
  if (size <= limit) return;
  throw new StateSizeError(
    `${what} is ${size} bytes, more than the ${limit} bytes one message carries; use DownloadState`,
    limit,
    size,
    "unary_message",
  );
}
