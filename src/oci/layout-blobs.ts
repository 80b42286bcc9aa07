/**
 * The layout's content-addressed blob files, `blobs/sha256/<hex>`. A blob is staged in the layout's
 * temp directory while its digest is computed, fsynced, then renamed into place: a blob file is
 * either absent or complete, and writing one that exists again is harmless.
 */
import { createHash } from "node:crypto";
import { open, readdir, rename, stat, unlink, utimes } from "node:fs/promises";
import path from "node:path";
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError } from "../errors.ts";
import type { CallContext } from "./call-context.ts";
import { assertDigest, sha256Digest } from "./digest.ts";
import { abortableIterate } from "./layout-abortable.ts";
import { errnoCode, fsyncDir, ioError, stageDurably, tempPath } from "./layout-files.ts";
import type { BlobSource } from "./target.ts";

const READ_CHUNK = 256 * 1024;
const HEX_RE = /^[a-f0-9]{64}$/;

export interface BlobStat {
  size: number;
  mtimeMs: number;
}

export interface BlobWriteLimits {
  maxSize?: number | undefined;
  onTooLarge?: ((limit: number) => Error) | undefined;
}

export class LayoutBlobStore {
  readonly dir: string;
  private readonly tmpDir: string;

  constructor(root: string, tmpDir: string) {
    this.dir = path.join(root, "blobs", "sha256");
    this.tmpDir = tmpDir;
  }

  path(digest: string): string {
    assertDigest(digest);
    return path.join(this.dir, digest.slice("sha256:".length));
  }

  async stat(digest: string): Promise<BlobStat | null> {
    const file = this.path(digest);
    try {
      const st = await stat(file);
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return null;
      throw ioError(err, `checking blob ${digest}`);
    }
  }

  /**
   * Stores content and returns its digest and size. `claim` runs once the digest is known, before
   * the blob file is refreshed or put in place (garbage collection pins it there).
   */
  async write(
    source: BlobSource,
    limits: BlobWriteLimits,
    call: CallContext,
    claim: (digest: string) => Promise<void> = async () => undefined,
  ): Promise<{ digest: string; size: number }> {
    const { bytes, stream } = source;
    if (bytes !== undefined && stream !== undefined) {
      throw new InvalidArgumentError("a blob source takes bytes or a stream, not both");
    }
    call.check();
    if (stream !== undefined) return this.writeStream(stream, limits, call, claim);
    if (bytes === undefined) throw new InvalidArgumentError("a blob source needs bytes or a stream");
    if (limits.maxSize !== undefined && bytes.byteLength > limits.maxSize) {
      throw tooLarge(limits, limits.maxSize);
    }
    const digest = sha256Digest(bytes);
    await claim(digest);
    await this.writeKnown(digest, bytes);
    return { digest, size: bytes.byteLength };
  }

  /** Stores bytes whose digest the caller computed (manifests, in-memory blobs). */
  async writeKnown(digest: string, bytes: Uint8Array): Promise<void> {
    const file = this.path(digest);
    if (await this.refreshIfPresent(file, bytes.byteLength)) return;
    try {
      await stageDurably(this.tmpDir, "blob", bytes, (tmp) => this.place(tmp, file));
    } catch (err) {
      throw ioError(err, `writing blob ${digest}`);
    }
  }

  /**
   * A blob that is already stored is kept, and its mtime refreshed: a re-pushed blob is about to be
   * referenced, and the scan at the next open spares young blobs.
   */
  private async refreshIfPresent(file: string, size: number): Promise<boolean> {
    try {
      const st = await stat(file);
      // A wrong size means a damaged file: replace it with the good content.
      if (st.size !== size) return false;
      const now = new Date();
      await utimes(file, now, now);
      return true;
    } catch (err) {
      // Gone (garbage-collected a moment ago): write it anew.
      if (errnoCode(err) === "ENOENT") return false;
      throw ioError(err, `refreshing blob ${path.basename(file)}`);
    }
  }

  private async writeStream(
    stream: AsyncIterable<Uint8Array>,
    limits: BlobWriteLimits,
    call: CallContext,
    claim: (digest: string) => Promise<void>,
  ): Promise<{ digest: string; size: number }> {
    const tmp = tempPath(this.tmpDir, "blob");
    const hash = createHash("sha256");
    let size = 0;
    try {
      const handle = await open(tmp, "wx", 0o644);
      try {
        for await (const chunk of abortableIterate(stream, call)) {
          if (!(chunk instanceof Uint8Array)) {
            throw new InvalidArgumentError("a blob stream must yield Uint8Array chunks");
          }
          size += chunk.byteLength;
          if (limits.maxSize !== undefined && size > limits.maxSize) throw tooLarge(limits, limits.maxSize);
          hash.update(chunk);
          await writeAll(handle, chunk);
        }
        call.check();
        await handle.sync();
      } finally {
        await handle.close();
      }
      const digest = `sha256:${hash.digest("hex")}`;
      await claim(digest);
      // Renaming over an existing copy is harmless (same content) and gives it a fresh mtime.
      await this.place(tmp, this.path(digest));
      return { digest, size };
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw ioError(err, "writing a streamed blob");
    }
  }

  private async place(tmp: string, file: string): Promise<void> {
    await rename(tmp, file);
    await fsyncDir(this.dir);
  }

  /** Whole content of a small blob (a manifest), or null when absent. Not verified here. */
  async readAll(digest: string, maxBytes: number): Promise<Uint8Array | null> {
    const file = this.path(digest);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(file, "r");
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return null;
      throw ioError(err, `reading blob ${digest}`);
    }
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) {
        throw new ResourceExhaustedError(
          `blob ${digest} has ${size} bytes, more than the ${maxBytes} allowed`,
          maxBytes,
        );
      }
      return new Uint8Array(await handle.readFile());
    } catch (err) {
      throw ioError(err, `reading blob ${digest}`);
    } finally {
      await handle.close();
    }
  }

  /**
   * Streams a blob's bytes. The file is opened on first read; `expectedSize` sizes the reads so a
   * small blob costs one small buffer, and one byte past it is read so an oversized file shows.
   */
  async *read(digest: string, expectedSize: number, call: CallContext): AsyncGenerator<Uint8Array> {
    const file = this.path(digest);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(file, "r");
    } catch (err) {
      if (errnoCode(err) === "ENOENT") throw new NotFoundError(`blob ${digest} is not in the layout`);
      throw ioError(err, `reading blob ${digest}`);
    }
    try {
      let offset = 0;
      for (;;) {
        call.check();
        const want = Math.min(READ_CHUNK, Math.max(1, expectedSize - offset + 1));
        const buffer = Buffer.allocUnsafe(want);
        const { bytesRead } = await handle.read(buffer, 0, want, offset);
        if (bytesRead === 0) return;
        offset += bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
    } catch (err) {
      throw ioError(err, `reading blob ${digest}`);
    } finally {
      await handle.close();
    }
  }

  /**
   * Blob files (digest, size, mtime), for garbage collection; only names `want` accepts are
   * stat'ed. Files whose names are not a sha256 hex are left out.
   */
  async list(want: (digest: string) => boolean = () => true): Promise<Array<{ digest: string } & BlobStat>> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw ioError(err, `listing ${this.dir}`);
    }
    const out: Array<{ digest: string } & BlobStat> = [];
    for (const name of names) {
      if (!HEX_RE.test(name) || !want(`sha256:${name}`)) continue;
      const st = await this.stat(`sha256:${name}`);
      if (st !== null) out.push({ digest: `sha256:${name}`, ...st });
    }
    return out;
  }

  async remove(digest: string): Promise<void> {
    try {
      await unlink(this.path(digest));
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw ioError(err, `removing blob ${digest}`);
    }
  }
}

function tooLarge(limits: BlobWriteLimits, limit: number): Error {
  return (
    limits.onTooLarge?.(limit) ??
    new ResourceExhaustedError(`the blob is larger than the ${limit}-byte limit`, limit)
  );
}

async function writeAll(handle: Awaited<ReturnType<typeof open>>, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}
