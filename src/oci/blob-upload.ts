/**
 * Blob uploads. In-memory content goes up in as few requests as the registry allows: one
 * `POST ?digest=` where supported (tried once per target), else POST then PUT. Content larger than
 * the chunk size goes up in PATCH chunks with the digest computed on the way; the last chunk rides
 * on the closing PUT. In-memory uploads are retried whole; a stream cannot be replayed, so a stream
 * upload that fails mid-way is cancelled and reported, never retried.
 */
import { createHash, type Hash } from "node:crypto";
import { DataLossError, InvalidArgumentError, ResourceExhaustedError, UnavailableError } from "../errors.ts";
import { CallContext } from "./call-context.ts";
import { sha256Digest } from "./digest.ts";
import { discard, type HttpResponse, header } from "./http-client.ts";
import type { RegistryClient } from "./registry-client.ts";
import { TransientError } from "./retry.ts";
import type { BlobSource, Descriptor, PushBlobOptions } from "./target.ts";

const OCTET_STREAM = "application/octet-stream";
const CANCEL_TIMEOUT_MS = 5_000;

export interface BlobUploaderOptions {
  client: RegistryClient;
  chunkSize: number;
  logger?: { debug?(msg: string, fields?: Record<string, unknown>): void } | undefined;
}

/** `url` with `digest=<d>` added to its query, the existing query (e.g. `_state`) kept byte for byte. */
export function withDigestParam(url: URL, digest: string): URL {
  const out = new URL(url.href);
  const param = `digest=${encodeURIComponent(digest)}`;
  out.search = out.search.length > 1 ? `${out.search}&${param}` : `?${param}`;
  return out;
}

interface Limit {
  maxSize: number | undefined;
  tooLarge: (limit: number) => Error;
}

class UploadTooLarge extends Error {
  readonly error: Error;
  constructor(error: Error) {
    super(error.message);
    this.error = error;
  }
}

export class BlobUploader {
  private readonly client: RegistryClient;
  private readonly chunkSize: number;
  private readonly logger: BlobUploaderOptions["logger"];
  /** Whether the registry completes an upload from a single `POST ?digest=` (learned once). */
  private monolithicPost: "unknown" | "supported" | "unsupported" = "unknown";

  constructor(opts: BlobUploaderOptions) {
    this.client = opts.client;
    this.chunkSize = opts.chunkSize;
    this.logger = opts.logger;
  }

  async push(
    source: BlobSource,
    mediaType: string,
    opts: PushBlobOptions,
    call: CallContext,
  ): Promise<Descriptor> {
    const limit: Limit = {
      maxSize: opts.maxSize,
      tooLarge:
        opts.onTooLarge ??
        ((n) => new ResourceExhaustedError(`${call.what}: the blob is larger than ${n} bytes`, n)),
    };
    if ((source.bytes === undefined) === (source.stream === undefined)) {
      throw new InvalidArgumentError(`${call.what}: give exactly one of bytes or stream`);
    }
    if (source.bytes !== undefined) {
      const bytes = source.bytes;
      if (limit.maxSize !== undefined && bytes.byteLength > limit.maxSize)
        throw limit.tooLarge(limit.maxSize);
      const digest = sha256Digest(bytes);
      if (bytes.byteLength > this.chunkSize) {
        await this.client.retrying(() => this.uploadChunkedFromMemory(bytes, digest, call), call);
      } else {
        await this.client.retrying(() => this.uploadWhole(bytes, digest, call), call);
      }
      return { mediaType, digest, size: bytes.byteLength };
    }
    return this.pushStream(source.stream as AsyncIterable<Uint8Array>, mediaType, limit, call);
  }

  private async pushStream(
    stream: AsyncIterable<Uint8Array>,
    mediaType: string,
    limit: Limit,
    call: CallContext,
  ): Promise<Descriptor> {
    const pieces = rechunk(stream, this.chunkSize, limit)[Symbol.asyncIterator]();
    let first: IteratorResult<Uint8Array>;
    let second: IteratorResult<Uint8Array>;
    try {
      first = await pieces.next();
      second = first.done ? first : await pieces.next();
    } catch (err) {
      if (err instanceof UploadTooLarge) throw err.error;
      throw err;
    }
    const firstPiece = first.done ? new Uint8Array(0) : first.value;
    if (second.done) {
      // Small enough to hold: upload it like in-memory content, which can be retried.
      const digest = sha256Digest(firstPiece);
      await this.client.retrying(() => this.uploadWhole(firstPiece, digest, call), call);
      return { mediaType, digest, size: firstPiece.byteLength };
    }
    const location = await this.client.retrying(() => this.startSession(call), call);
    const session = new UploadSession(this.client, location, call);
    try {
      await session.patch(firstPiece);
      // One piece is held back so the last one can ride on the closing PUT.
      let held = second.value;
      for (;;) {
        const next = await pieces.next();
        if (next.done) break;
        await session.patch(held);
        held = next.value;
      }
      const result = await session.finish(held);
      return { mediaType, digest: result.digest, size: result.size };
    } catch (err) {
      await this.cancel(session.location, call);
      if (err instanceof UploadTooLarge) throw err.error;
      if (err instanceof TransientError) {
        throw new UnavailableError(
          `${call.what}: the upload failed mid-way (${err.reason} from ${err.host}); streamed content cannot ` +
            "be replayed, so it was not retried: push it again",
          { cause: err.cause ?? err },
        );
      }
      throw err;
    } finally {
      await pieces.return?.(undefined);
    }
  }

  /** One attempt at uploading in-memory content of at most one chunk. */
  private async uploadWhole(bytes: Uint8Array, digest: string, call: CallContext): Promise<void> {
    let location: URL | undefined;
    if (this.monolithicPost !== "unsupported") {
      const url = this.client.repoUrl("blobs/uploads/");
      url.searchParams.set("digest", digest);
      const res = await this.client.exchange(
        { method: "POST", url, headers: { "content-type": OCTET_STREAM }, body: bytes },
        call,
      );
      if (res.status === 201) {
        this.monolithicPost = "supported";
        await this.checkStoredDigest(res, digest, call);
        return;
      }
      if (res.status === 202) {
        // The registry opened a session and dropped the body (Distribution): use the session.
        if (this.monolithicPost === "unknown")
          this.logger?.debug?.("registry lacks single-request blob upload");
        this.monolithicPost = "unsupported";
        location = this.sessionLocation(res, call);
        await discard(res);
      } else if (res.status === 400 || res.status === 405 || res.status === 415) {
        this.monolithicPost = "unsupported";
        await discard(res);
      } else {
        await this.client.fail(res, "POST", call);
      }
    }
    if (location === undefined) location = await this.startSession(call);
    const res = await this.client.exchange(
      {
        method: "PUT",
        url: withDigestParam(location, digest),
        headers: { "content-type": OCTET_STREAM },
        body: bytes,
      },
      call,
    );
    if (res.status < 200 || res.status > 299 || res.status === 202) await this.client.fail(res, "PUT", call);
    await this.checkStoredDigest(res, digest, call);
  }

  /** One attempt at a chunked upload of in-memory content (a retry starts a fresh session). */
  private async uploadChunkedFromMemory(bytes: Uint8Array, digest: string, call: CallContext): Promise<void> {
    const session = new UploadSession(this.client, await this.startSession(call), call);
    try {
      let offset = 0;
      while (bytes.byteLength - offset > this.chunkSize) {
        await session.patch(bytes.subarray(offset, offset + this.chunkSize));
        offset += this.chunkSize;
      }
      const result = await session.finish(bytes.subarray(offset));
      if (result.digest !== digest) {
        throw new DataLossError(`${call.what}: the content changed while it was being uploaded`);
      }
    } catch (err) {
      // After a transient failure the whole upload is tried again; the registry is struggling,
      // so it is spared the clean-up request (abandoned sessions expire).
      if (!(err instanceof TransientError)) await this.cancel(session.location, call);
      throw err;
    }
  }

  /** POST that opens an upload session; returns its Location. */
  private async startSession(call: CallContext): Promise<URL> {
    const res = await this.client.exchange(
      { method: "POST", url: this.client.repoUrl("blobs/uploads/") },
      call,
    );
    if (res.status !== 202) await this.client.fail(res, "POST", call);
    const location = this.sessionLocation(res, call);
    await discard(res);
    return location;
  }

  private sessionLocation(res: HttpResponse, call: CallContext): URL {
    const location = header(res, "location");
    if (location === undefined || location === "") {
      throw new UnavailableError(
        `${call.what}: registry ${this.client.host} opened an upload without a Location`,
      );
    }
    return new URL(location, res.url);
  }

  private async checkStoredDigest(res: HttpResponse, digest: string, call: CallContext): Promise<void> {
    await discard(res);
    const stored = header(res, "docker-content-digest");
    if (stored !== undefined && stored !== digest) {
      throw new DataLossError(
        `${call.what}: registry ${this.client.host} stored ${stored}, we sent ${digest}`,
      );
    }
  }

  /** Best-effort DELETE of an upload session, bounded in time; failures are only logged. */
  private async cancel(location: URL, call: CallContext): Promise<void> {
    const remaining = call.remainingMs();
    const budget = Math.min(
      CANCEL_TIMEOUT_MS,
      Number.isFinite(remaining) ? Math.max(0, remaining) : CANCEL_TIMEOUT_MS,
    );
    const cancelCall = new CallContext({ deadline: Date.now() + budget }, `${call.what}: cancel upload`);
    try {
      const res = await this.client.exchange({ method: "DELETE", url: location }, cancelCall);
      await discard(res);
    } catch (err) {
      this.logger?.debug?.("cancelling an upload session failed", {
        host: this.client.host,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}

/** An open upload session: PATCHes chunks in order, then closes with PUT `?digest=`. */
class UploadSession {
  location: URL;
  private readonly client: RegistryClient;
  private readonly call: CallContext;
  private readonly hash: Hash = createHash("sha256");
  private offset = 0;

  constructor(client: RegistryClient, location: URL, call: CallContext) {
    this.client = client;
    this.location = location;
    this.call = call;
  }

  async patch(chunk: Uint8Array): Promise<void> {
    if (chunk.byteLength === 0) return;
    const end = this.offset + chunk.byteLength - 1;
    const res = await this.client.exchange(
      {
        method: "PATCH",
        url: this.location,
        headers: { "content-type": OCTET_STREAM, "content-range": `${this.offset}-${end}` },
        body: chunk,
      },
      this.call,
    );
    if (res.status !== 202) await this.client.fail(res, "PATCH", this.call);
    const next = header(res, "location");
    await discard(res);
    if (next !== undefined && next !== "") this.location = new URL(next, res.url);
    this.hash.update(chunk);
    this.offset += chunk.byteLength;
  }

  async finish(last: Uint8Array): Promise<{ digest: string; size: number }> {
    this.hash.update(last);
    const digest = `sha256:${this.hash.digest("hex")}`;
    const size = this.offset + last.byteLength;
    const headers: Record<string, string> = { "content-type": OCTET_STREAM };
    if (last.byteLength > 0) headers["content-range"] = `${this.offset}-${size - 1}`;
    const res = await this.client.exchange(
      { method: "PUT", url: withDigestParam(this.location, digest), headers, body: last },
      this.call,
    );
    if (res.status < 200 || res.status > 299 || res.status === 202)
      await this.client.fail(res, "PUT", this.call);
    await discard(res);
    const stored = header(res, "docker-content-digest");
    if (stored !== undefined && stored !== digest) {
      throw new DataLossError(
        `${this.call.what}: registry ${this.client.host} stored ${stored}, we sent ${digest}`,
      );
    }
    return { digest, size };
  }
}

/**
 * Re-cuts a stream into pieces of exactly `size` bytes (the last may be shorter; an empty stream
 * yields nothing), failing with UploadTooLarge once more than `limit.maxSize` bytes arrive.
 */
async function* rechunk(
  source: AsyncIterable<Uint8Array>,
  size: number,
  limit: Limit,
): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let held = 0;
  let total = 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (limit.maxSize !== undefined && total > limit.maxSize)
      throw new UploadTooLarge(limit.tooLarge(limit.maxSize));
    let rest = chunk;
    while (held + rest.byteLength >= size) {
      const take = size - held;
      parts.push(rest.subarray(0, take));
      yield concat(parts, size);
      parts = [];
      held = 0;
      rest = rest.subarray(take);
    }
    if (rest.byteLength > 0) {
      // Copy: the producer may reuse its buffer after we return control.
      parts.push(Uint8Array.from(rest));
      held += rest.byteLength;
    }
  }
  if (held > 0) yield concat(parts, held);
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1 && parts[0]?.byteLength === size) return Uint8Array.from(parts[0]);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
