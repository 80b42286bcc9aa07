/**
 * Blob uploads. In-memory content goes up in as few requests as the registry allows: one
 * `POST ?digest=` where supported (tried once per target), else POST then PUT. Content larger than
 * the chunk size goes up in PATCH chunks with the digest computed on the way; the last chunk rides
 * on the closing PUT. A stream's next chunk is read while the previous one is being sent, into one
 * of two reused buffers, so a stream of any length holds two chunks and is read at most one chunk
 * ahead of the registry. In-memory uploads are retried whole; a stream cannot be replayed, so a
 * stream upload that fails mid-way is cancelled and reported, never retried.
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
    const chunks = new StreamChunker(stream, this.chunkSize, limit);
    let session: UploadSession | undefined;
    try {
      let chunk = await chunks.next();
      if (chunk.last) {
        // Small enough to hold: upload it like in-memory content, which can be retried.
        const bytes = chunk.bytes;
        const digest = sha256Digest(bytes);
        await this.client.retrying(() => this.uploadWhole(bytes, digest, call), call);
        return { mediaType, digest, size: bytes.byteLength };
      }
      const location = await this.client.retrying(() => this.startSession(call), call);
      session = new UploadSession(this.client, location, call);
      while (!chunk.last) {
        // The next chunk is read from the source while this one is on its way to the registry.
        const [sent, read] = await Promise.allSettled([session.patch(chunk.bytes), chunks.next()]);
        if (read.status === "rejected") throw read.reason;
        if (sent.status === "rejected") throw sent.reason;
        chunk = read.value;
      }
      // The last chunk rides on the closing PUT.
      const result = await session.finish(chunk.bytes);
      return { mediaType, digest: result.digest, size: result.size };
    } catch (err) {
      if (session !== undefined) await this.cancel(session.location, call);
      if (err instanceof UploadTooLarge) throw err.error;
      if (session !== undefined && err instanceof TransientError) {
        throw new UnavailableError(
          `${call.what}: the upload failed mid-way (${err.reason} from ${err.host}); streamed content cannot ` +
            "be replayed, so it was not retried: push it again",
          { cause: err.cause ?? err },
        );
      }
      throw err;
    } finally {
      await chunks.close();
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

interface StreamChunk {
  bytes: Uint8Array;
  /** Whether the source ended with this chunk. */
  last: boolean;
}

/**
 * Cuts a stream into chunks of exactly `size` bytes (the last may be shorter; an empty stream gives
 * one empty last chunk), failing with UploadTooLarge once more than `limit.maxSize` bytes arrive.
 * Chunks are copied into two buffers used in turn, so a chunk stays valid while the next one is
 * read and an upload of any length holds two chunks and leaves no per-chunk garbage behind. The
 * source's parts are copied on arrival, so a producer may reuse its buffer once asked for more. A
 * stream that ends within its first chunk never gets a chunk buffer: its parts are joined instead.
 */
class StreamChunker {
  readonly #source: AsyncIterator<Uint8Array>;
  readonly #size: number;
  readonly #limit: Limit;
  readonly #buffers: Array<Uint8Array | undefined> = [undefined, undefined];
  #turn = 0;
  /** Bytes already taken from the source that belong to the next chunk. */
  #carry: Uint8Array | undefined;
  #received = 0;
  #ended = false;

  constructor(source: AsyncIterable<Uint8Array>, size: number, limit: Limit) {
    this.#source = source[Symbol.asyncIterator]();
    this.#size = size;
    this.#limit = limit;
  }

  /** The next chunk; its bytes stay valid until the call after the next one. */
  async next(): Promise<StreamChunk> {
    const size = this.#size;
    let buffer = this.#buffers[this.#turn];
    let parts: Uint8Array[] | undefined = buffer === undefined ? [] : undefined;
    let length = 0;
    while (length < size) {
      const part = this.#carry ?? (await this.#read());
      this.#carry = undefined;
      if (part === undefined) break;
      const take = Math.min(part.byteLength, size - length);
      if (parts !== undefined && length + take < size) {
        parts.push(new Uint8Array(part.subarray(0, take)));
      } else {
        if (buffer === undefined) {
          buffer = new Uint8Array(size);
          this.#buffers[this.#turn] = buffer;
          let at = 0;
          for (const p of parts ?? []) {
            buffer.set(p, at);
            at += p.byteLength;
          }
          parts = undefined;
        }
        buffer.set(part.subarray(0, take), length);
      }
      length += take;
      // Held only until the next chunk starts, with no read from the source in between.
      if (take < part.byteLength) this.#carry = part.subarray(take);
    }
    // A full chunk is the last one only if the source has nothing more: look ahead by one part.
    if (length === size && this.#carry === undefined) this.#carry = await this.#read();
    const last = this.#carry === undefined;
    if (buffer === undefined) return { bytes: join(parts ?? [], length), last };
    this.#turn ^= 1;
    return { bytes: buffer.subarray(0, length), last };
  }

  /** Lets go of the source when the upload stopped before its end. */
  async close(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.#source.return?.();
  }

  /** The next non-empty part of the source, or undefined at its end. */
  async #read(): Promise<Uint8Array | undefined> {
    while (!this.#ended) {
      const next = await this.#source.next();
      if (next.done) {
        this.#ended = true;
        return undefined;
      }
      const part = next.value;
      this.#received += part.byteLength;
      const { maxSize } = this.#limit;
      if (maxSize !== undefined && this.#received > maxSize) {
        throw new UploadTooLarge(this.#limit.tooLarge(maxSize));
      }
      if (part.byteLength > 0) return part;
    }
    return undefined;
  }
}

function join(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1 && parts[0]?.byteLength === size) return parts[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
