import { createHash, type Hash } from "node:crypto";
import { Readable } from "node:stream";
import { createGunzip, createGzip, constants as zlibConstants } from "node:zlib";
import { DataLossError, ResourceExhaustedError, TfstateError } from "../errors.ts";

/**
 * State bytes on their way to and from a layer blob: gzip (ghoten writes BestSpeed, any gzip
 * reads), the decompressed size limit, and the MD5 OpenTofu uses as its change check.
 */

export function sizeLimitError(what: string, limit: number): ResourceExhaustedError {
  return new ResourceExhaustedError(
    `${what} exceeds the maximum state size of ${limit} bytes (maxStateSize / max_state_size)`,
    limit,
  );
}

/** Counts bytes through a stream and fails as soon as they pass `limit`. */
export async function* limitStream(
  source: AsyncIterable<Uint8Array>,
  limit: number,
  what: string,
): AsyncGenerator<Uint8Array> {
  let seen = 0;
  for await (const chunk of source) {
    seen += chunk.byteLength;
    if (seen > limit) throw sizeLimitError(what, limit);
    yield chunk;
  }
}

/**
 * A state stream whose sender declared the MD5 it should have. Every written state is hashed for
 * its manifest anyway, so the writer hands that one sum to `checkMd5` as soon as the last byte has
 * passed, before the upload completes: throwing there abandons the upload and nothing is stored.
 */
export interface Md5CheckedStream extends AsyncIterable<Uint8Array> {
  checkMd5(md5: Uint8Array): void;
}

export function isMd5Checked(source: AsyncIterable<Uint8Array>): source is Md5CheckedStream {
  return typeof (source as Partial<Md5CheckedStream>).checkMd5 === "function";
}

/**
 * Passes chunks through while hashing them with MD5; `digest()` is valid once the stream ended.
 * `check` sees the sum at the end, before the last chunk's consumer learns the stream is over.
 */
export class Md5Tap {
  #hash: Hash = createHash("md5");
  #size = 0;
  #sum: Uint8Array | undefined;
  async *tap(
    source: AsyncIterable<Uint8Array>,
    check?: (md5: Uint8Array) => void,
  ): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      this.#hash.update(chunk);
      this.#size += chunk.byteLength;
      yield chunk;
    }
    const sum = new Uint8Array(this.#hash.digest());
    check?.(sum);
    this.#sum = sum;
  }
  get size(): number {
    return this.#size;
  }
  digest(): Uint8Array {
    if (this.#sum === undefined) throw new Error("md5 requested before the stream ended");
    return this.#sum;
  }
}

export function md5(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("md5").update(data).digest());
}

/**
 * gzip at BestSpeed, as ghoten writes it. An error of the source (a size limit, a failed check, a
 * client gone) comes out of the compressed stream unchanged.
 */
export async function* gzipStream(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const input = Readable.from(source, { objectMode: false });
  const gzip = createGzip({ level: zlibConstants.Z_BEST_SPEED });
  let sourceError: unknown;
  // pipe() does not forward errors: without this a failing source would leave gzip waiting forever.
  input.on("error", (err) => {
    sourceError = err;
    gzip.destroy(err);
  });
  input.pipe(gzip);
  try {
    for await (const chunk of gzip) yield chunk as Uint8Array;
  } catch (err) {
    throw sourceError ?? err;
  } finally {
    input.destroy();
    gzip.destroy();
  }
}

/**
 * Decompresses a gzip layer. Corrupt gzip is data loss at `where`; errors already typed by the
 * source (a digest mismatch, a size limit, an unavailable registry) pass through unchanged.
 */
export async function* gunzipStream(
  source: AsyncIterable<Uint8Array>,
  where: string,
): AsyncGenerator<Uint8Array> {
  const input = Readable.from(source, { objectMode: false });
  const gunzip = createGunzip();
  let sourceError: unknown;
  input.on("error", (err) => {
    sourceError = err;
    gunzip.destroy(err);
  });
  input.pipe(gunzip);
  try {
    for await (const chunk of gunzip) yield chunk as Uint8Array;
  } catch (err) {
    const cause = sourceError ?? err;
    if (cause instanceof TfstateError) throw cause;
    throw new DataLossError(`${where}: state layer is not valid gzip (${(cause as Error).message})`, {
      cause,
    });
  } finally {
    input.destroy();
    gunzip.destroy();
  }
}

export async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const c of source) {
    chunks.push(c);
    total += c.byteLength;
  }
  return Buffer.concat(chunks, total);
}
