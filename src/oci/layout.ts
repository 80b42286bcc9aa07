/**
 * The OCI image-layout directory implementation of Target: the embedded default store. The layout
 * follows the image-layout spec (oci-layout, index.json, blobs/sha256/<hex>), so skopeo and other
 * OCI tools read it, and a layout they wrote is read here. A tag is the
 * `org.opencontainers.image.ref.name` annotation of an index.json entry.
 *
 * Consistency: every blob and index.json is written to a temp file, fsynced and renamed into place,
 * so readers never see a partial file and a crash leaves the previous state. Index changes in this
 * process run one at a time; a lock file keeps other processes out (see layout-lock.ts). The
 * in-memory index is authoritative while the lock is held: other tools may read the directory
 * meanwhile, but must not write it.
 *
 * Blobs nothing references any more are removed by themselves (layout-gc.ts), so disk use follows
 * what index.json reaches.
 */
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
} from "../errors.ts";
import { CallContext } from "./call-context.ts";
import { assertDigest, isDigest, sha256Digest, verifyStream } from "./digest.ts";
import { LayoutBlobStore } from "./layout-blobs.ts";
import { ioError, writeFileDurably } from "./layout-files.ts";
import {
  LayoutCollector,
  type LayoutGcResult,
  type LayoutGcSettings,
  type LayoutGcStats,
  type ResolvedGcSettings,
  resolveGcSettings,
} from "./layout-gc.ts";
import { findInImageIndexes } from "./layout-graph.ts";
import {
  EMPTY_INDEX,
  entryDescriptor,
  findByDigest,
  findByTag,
  type LayoutIndex,
  refName,
  serializeIndex,
  withoutDigest,
  withoutTag,
  withTag,
  withUntagged,
} from "./layout-index.ts";
import type { LayoutDirectoryLock, LayoutLogger } from "./layout-lock.ts";
import { checkManifestForPush } from "./layout-manifest.ts";
import { openLayoutDirectory } from "./layout-open.ts";
import type { PinHandle } from "./layout-pins.ts";
import { SerialQueue } from "./layout-queue.ts";
import { entryDelta, LayoutReferences } from "./layout-refs.ts";
import { MAX_MANIFEST_BYTES } from "./media-types.ts";
import type {
  BlobSource,
  CallOptions,
  Descriptor,
  ManifestFetch,
  PushBlobOptions,
  Target,
} from "./target.ts";

export type { LayoutGcResult, LayoutGcSettings, LayoutGcStats } from "./layout-gc.ts";
export type { LayoutLogger } from "./layout-lock.ts";

export interface LayoutTargetOptions {
  /** The layout directory; created (with its files) when missing. */
  dir: string;
  logger?: LayoutLogger | undefined;
  /** Tuning of the automatic garbage collection; the defaults suit a service. */
  gc?: LayoutGcSettings | undefined;
}

export interface LayoutGcOptions extends CallOptions {
  /** Unreferenced blobs younger than this are kept: their manifest may be on its way. */
  graceMs: number;
}

export interface LayoutTarget extends Target {
  readonly kind: "layout";
  /**
   * A full collection now: removes blobs index.json does not reach that are older than `graceMs`
   * and not pinned by a push in this process waiting for its manifest. Collection also runs by
   * itself (see layout-gc.ts): after changes that drop references, and once at open.
   */
  gc(opts: LayoutGcOptions): Promise<LayoutGcResult>;
  /**
   * Resolves once queued writes are done and the blobs they left unreferenced are removed (without
   * waiting for the collection delay). Blobs a push still pins, or that the scan at open found too
   * young, are not waited for.
   */
  waitForIdle(): Promise<void>;
  gcStats(): LayoutGcStats;
}

/**
 * Opens (creating when missing) the layout at `opts.dir` and takes its lock. Throws
 * InvalidArgumentError for a non-empty directory that is not an OCI image layout or has an
 * unsupported imageLayoutVersion, FailedPreconditionError while another process holds it.
 */
export function createLayoutTarget(opts: LayoutTargetOptions): LayoutTarget {
  const settings = resolveGcSettings(opts.gc);
  return new LayoutStore(opts.dir, opts.logger, settings);
}

function additions(delta: ReadonlyMap<string, number>): Map<string, number> {
  return new Map([...delta].filter(([, n]) => n > 0));
}

const TAG_RE = /^[\w][\w.-]{0,127}$/;

type Reference = { kind: "tag"; tag: string } | { kind: "digest"; digest: string };

function parseReference(reference: string): Reference {
  if (reference.includes(":")) {
    assertDigest(reference);
    return { kind: "digest", digest: reference };
  }
  assertTag(reference);
  return { kind: "tag", tag: reference };
}

function assertTag(tag: string): void {
  if (!TAG_RE.test(tag)) {
    throw new InvalidArgumentError(
      `invalid tag ${JSON.stringify(tag)}: expected 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'`,
    );
  }
}

function describe(ref: Reference): string {
  return ref.kind === "tag" ? `tag ${JSON.stringify(ref.tag)}` : `manifest ${ref.digest}`;
}

interface Mutation<T> {
  next: LayoutIndex;
  result: T;
  /** Manifest bytes the change adds, so their links need not be read back. */
  provided?: ReadonlyMap<string, Uint8Array>;
}

class LayoutStore implements LayoutTarget {
  readonly kind = "layout" as const;
  readonly location: string;
  private readonly logger: LayoutLogger | undefined;
  private readonly tmpDir: string;
  private readonly indexFile: string;
  private readonly lock: LayoutDirectoryLock;
  private readonly blobs: LayoutBlobStore;
  private readonly queue = new SerialQueue();
  private readonly refs = new LayoutReferences();
  private readonly collector: LayoutCollector;
  /** The committed index; replaced (never mutated) once a new index.json is durable. */
  private index: LayoutIndex;
  private closing: Promise<void> | undefined;

  constructor(dir: string, logger: LayoutLogger | undefined, gc: ResolvedGcSettings) {
    const opened = openLayoutDirectory(dir, logger);
    this.location = opened.root;
    this.logger = logger;
    this.tmpDir = opened.tmpDir;
    this.indexFile = opened.indexFile;
    this.lock = opened.lock;
    this.index = opened.index;
    this.blobs = new LayoutBlobStore(opened.root, opened.tmpDir);
    this.collector = new LayoutCollector({
      blobs: this.blobs,
      refs: this.refs,
      logger,
      location: this.location,
      settings: gc,
    });
    // First in the queue: mutations keep the counts up to date from the loaded index on.
    void this.queue.run(() => this.countReferences());
  }

  private async countReferences(): Promise<void> {
    try {
      const delta = entryDelta(EMPTY_INDEX, this.index);
      const loaded = await this.refs.prepare(delta, new Map(), (digest) => this.readManifest(digest));
      this.refs.apply(delta, loaded);
      this.collector.start();
    } catch (err) {
      // Not expected (unreadable manifests are recorded, not thrown); without counts, nothing is collected.
      this.logger?.warn("layout garbage collection is off: the manifest graph could not be loaded", {
        layout: this.location,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  private readManifest(digest: string): Promise<Uint8Array | null> {
    return this.blobs.readAll(digest, MAX_MANIFEST_BYTES);
  }

  private begin(opts: CallOptions | undefined, what: string): CallContext {
    if (this.closing !== undefined) {
      throw new FailedPreconditionError(`${what}: the layout target for ${this.location} is closed`);
    }
    const call = new CallContext(opts, `${what} in layout ${this.location}`);
    call.check();
    return call;
  }

  async ping(opts?: CallOptions): Promise<void> {
    this.begin(opts, "ping");
    try {
      await access(this.location, constants.R_OK | constants.W_OK);
      await access(this.blobs.dir, constants.R_OK | constants.W_OK);
      await access(this.indexFile, constants.R_OK);
    } catch (err) {
      throw new UnavailableError(`layout ${this.location} is not readable and writable: ${String(err)}`, {
        cause: err,
      });
    }
    await this.lock.assertHeld();
  }

  async blobExists(digest: string, opts?: CallOptions): Promise<boolean> {
    this.begin(opts, `check blob ${digest}`);
    assertDigest(digest);
    return (await this.blobs.stat(digest)) !== null;
  }

  async fetchBlob(
    desc: Pick<Descriptor, "digest" | "size">,
    opts?: CallOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const what = `blob ${desc.digest}`;
    const call = this.begin(opts, `fetch ${what}`);
    assertDigest(desc.digest);
    const st = await this.blobs.stat(desc.digest);
    if (st === null) throw new NotFoundError(`${what} is not in the layout ${this.location}`);
    // Caught before any byte goes out, so a caller streaming it on never sends a partial body.
    if (st.size !== desc.size) {
      throw new DataLossError(
        `${what} in layout ${this.location}: the file has ${st.size} bytes, its descriptor names ${desc.size}`,
      );
    }
    return verifyStream(
      this.blobs.read(desc.digest, desc.size, call),
      desc,
      `${what} in layout ${this.location}`,
    );
  }

  async pushBlob(source: BlobSource, mediaType: string, opts?: PushBlobOptions): Promise<Descriptor> {
    const call = this.begin(opts, "push a blob");
    let pin: PinHandle | undefined;
    try {
      const { digest, size } = await this.blobs.write(
        source,
        { maxSize: opts?.maxSize, onTooLarge: opts?.onTooLarge },
        call,
        async (digest) => {
          // Pinned before the file is touched; a removal already under way finishes first.
          pin = this.collector.pins.pinPush(digest);
          await this.collector.settled(digest);
        },
      );
      pin?.keep(call.signal);
      return { mediaType, digest, size };
    } catch (err) {
      pin?.release();
      throw err;
    }
  }

  async resolve(reference: string, opts?: CallOptions): Promise<Descriptor | null> {
    this.begin(opts, `resolve ${JSON.stringify(reference)}`);
    return this.lookup(parseReference(reference), this.index);
  }

  private async lookup(ref: Reference, index: LayoutIndex): Promise<Descriptor | null> {
    if (ref.kind === "tag") {
      const entry = findByTag(index, ref.tag);
      return entry === undefined ? null : entryDescriptor(entry);
    }
    const entry = findByDigest(index, ref.digest);
    if (entry !== undefined) return entryDescriptor(entry);
    return (await findInImageIndexes(this.blobs, index, ref.digest))?.descriptor ?? null;
  }

  async fetchManifest(
    reference: string,
    opts?: CallOptions & { ifNoneMatch?: string | undefined },
  ): Promise<ManifestFetch | null> {
    const call = this.begin(opts, `fetch manifest ${JSON.stringify(reference)}`);
    const ref = parseReference(reference);
    const what = `${describe(ref)} in layout ${this.location}`;
    for (let attempt = 1; ; attempt++) {
      const descriptor = await this.lookup(ref, this.index);
      if (descriptor === null) return null;
      if (opts?.ifNoneMatch !== undefined && opts.ifNoneMatch === descriptor.digest) {
        return { kind: "unchanged", digest: descriptor.digest };
      }
      if (!isDigest(descriptor.digest)) {
        throw new UnimplementedError(
          `${what}: digest ${descriptor.digest} uses an algorithm this store cannot read`,
        );
      }
      if (descriptor.size > MAX_MANIFEST_BYTES) {
        throw new ResourceExhaustedError(
          `${what}: the manifest has ${descriptor.size} bytes, more than the ${MAX_MANIFEST_BYTES} allowed`,
          MAX_MANIFEST_BYTES,
        );
      }
      let bytes: Uint8Array | null;
      try {
        bytes = await this.blobs.readAll(descriptor.digest, descriptor.size);
      } catch (err) {
        if (!(err instanceof ResourceExhaustedError)) throw err;
        throw new DataLossError(
          `${what}: the blob of ${descriptor.digest} is larger than its ${descriptor.size} bytes`,
        );
      }
      if (bytes === null) {
        const now = await this.lookup(ref, this.index);
        if (now?.digest === descriptor.digest) {
          throw new DataLossError(
            `${what}: index.json names ${descriptor.digest}, but its blob file is missing`,
          );
        }
        // The tag moved on and garbage collection took the manifest it named: read the new one.
        if (now !== null && ref.kind === "tag" && attempt < 3) {
          call.check();
          continue;
        }
        // Deleted between the lookup and the read: as absent as if the lookup had come later.
        return null;
      }
      const got = sha256Digest(bytes);
      if (got !== descriptor.digest || bytes.byteLength !== descriptor.size) {
        throw new DataLossError(
          `${what}: the blob file of ${descriptor.digest} is corrupt (it has ${bytes.byteLength} bytes ` +
            `with digest ${got}, index.json names ${descriptor.size} bytes)`,
        );
      }
      return { kind: "manifest", descriptor, bytes };
    }
  }

  async pushManifest(
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
    opts?: CallOptions,
  ): Promise<Descriptor> {
    const call = this.begin(opts, `push manifest ${JSON.stringify(reference)}`);
    const ref = parseReference(reference);
    const what = `pushing ${describe(ref)} to layout ${this.location}`;
    if (bytes.byteLength > MAX_MANIFEST_BYTES) {
      throw new ResourceExhaustedError(
        `${what}: the manifest has ${bytes.byteLength} bytes, more than the ${MAX_MANIFEST_BYTES} allowed`,
        MAX_MANIFEST_BYTES,
      );
    }
    const digest = sha256Digest(bytes);
    if (ref.kind === "digest" && ref.digest !== digest) {
      throw new InvalidArgumentError(`${what}: the manifest's content has digest ${digest}`);
    }
    const checked = checkManifestForPush(bytes, mediaType, what);
    const descriptor: Descriptor = { mediaType, digest, size: bytes.byteLength };
    if (checked.artifactType !== undefined) descriptor.artifactType = checked.artifactType;

    return this.mutate(call, async (index, hold) => {
      // Held until the commit, so garbage collection cannot remove one between check and commit.
      hold([digest, ...checked.required.map((blob) => blob.digest)]);
      for (const blob of checked.required) {
        await this.collector.settled(blob.digest);
        const st = await this.blobs.stat(blob.digest);
        if (st === null) {
          throw new FailedPreconditionError(
            `${what}: it names blob ${blob.digest} (${blob.mediaType}), which the layout does not have; push the blob first`,
          );
        }
        if (st.size !== blob.size) {
          throw new InvalidArgumentError(
            `${what}: it gives blob ${blob.digest} a size of ${blob.size}, the stored blob has ${st.size} bytes`,
          );
        }
      }
      await this.collector.settled(digest);
      await this.blobs.writeKnown(digest, bytes);
      const next = ref.kind === "tag" ? withTag(index, ref.tag, descriptor) : withUntagged(index, descriptor);
      return { next, result: { ...descriptor }, provided: new Map([[digest, bytes]]) };
    });
  }

  async deleteManifest(digest: string, opts?: CallOptions & { tagHint?: string | undefined }): Promise<void> {
    const call = this.begin(opts, `delete manifest ${digest}`);
    assertDigest(digest);
    await this.mutate(call, async (index) => {
      if (findByDigest(index, digest) === undefined) {
        const nested = await findInImageIndexes(this.blobs, index, digest);
        if (nested !== undefined) {
          throw new FailedPreconditionError(
            `manifest ${digest} in layout ${this.location} is listed by image index ${nested.parent}, ` +
              "not by index.json; delete that index instead",
          );
        }
        throw new NotFoundError(`manifest ${digest} is not in the layout ${this.location}`);
      }
      // Its blob, and the blobs only it named, go with the next collection.
      return { next: withoutDigest(index, digest), result: undefined };
    });
  }

  async deleteTag(tag: string, opts?: CallOptions): Promise<void> {
    const call = this.begin(opts, `delete tag ${JSON.stringify(tag)}`);
    assertTag(tag);
    await this.mutate(call, async (index) => {
      if (findByTag(index, tag) === undefined) {
        throw new NotFoundError(`tag ${JSON.stringify(tag)} is not in the layout ${this.location}`);
      }
      return { next: withoutTag(index, tag), result: undefined };
    });
  }

  /** Sorted. Ref names that are not valid tags (full references other tools write) are left out. */
  async listTags(opts?: CallOptions): Promise<string[]> {
    this.begin(opts, "list tags");
    const tags = new Set<string>();
    for (const entry of this.index.manifests) {
      const name = refName(entry);
      if (name !== undefined && TAG_RE.test(name)) tags.add(name);
    }
    return [...tags].sort();
  }

  async gc(opts: LayoutGcOptions): Promise<LayoutGcResult> {
    const call = this.begin(opts, "collect garbage");
    if (!Number.isFinite(opts.graceMs) || opts.graceMs < 0) {
      throw new InvalidArgumentError(`graceMs must be a number of milliseconds >= 0, got ${opts.graceMs}`);
    }
    // After the counts are loaded; not in the queue: decisions check the live counts and pins.
    await this.queue.run(async () => undefined);
    return this.collector.collectAll(this.index, opts.graceMs, call);
  }

  async waitForIdle(): Promise<void> {
    await this.queue.idle();
    await this.collector.drain();
  }

  gcStats(): LayoutGcStats {
    return this.collector.stats();
  }

  close(): Promise<void> {
    this.closing ??= this.queue
      .idle()
      .then(() => this.collector.close())
      .finally(() => this.lock.release(this.logger));
    return this.closing;
  }

  private mutate<T>(
    call: CallContext,
    change: (index: LayoutIndex, hold: (digests: string[]) => void) => Promise<Mutation<T>>,
  ): Promise<T> {
    return this.queue.run(async () => {
      call.check();
      const releases: Array<() => void> = [];
      try {
        const {
          next,
          result,
          provided = new Map(),
        } = await change(this.index, (digests) => {
          releases.push(this.collector.pins.hold(digests));
        });
        const delta = next === this.index ? new Map<string, number>() : entryDelta(this.index, next);
        const relink = [...provided.keys()].some((digest) => this.refs.isUnknown(digest));
        const loaded =
          delta.size > 0 || relink
            ? await this.refs.prepare(delta, provided, (digest) => this.readManifest(digest))
            : undefined;
        if (next !== this.index) {
          await this.lock.assertHeld();
          try {
            await writeFileDurably(this.tmpDir, this.indexFile, serializeIndex(next));
          } catch (err) {
            // index.json may be the new one after all (renamed, not fsynced): count what it adds,
            // so garbage collection keeps it. Overcounting keeps blobs, and the next open recounts.
            if (loaded !== undefined) this.collector.committed(this.refs.apply(additions(delta), loaded));
            throw ioError(err, `writing ${this.indexFile}`);
          }
        }
        // Synchronous from here: the counts change together with the index they describe.
        this.index = next;
        if (loaded !== undefined) this.collector.committed(this.refs.apply(delta, loaded));
        return result;
      } finally {
        for (const release of releases) release();
      }
    });
  }
}
