import type { CallOptions } from "../call-options.ts";
import { NotFoundError, UnimplementedError } from "../errors.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { CoreContext } from "./core-context.ts";
import type { LockInfo } from "./lock-info.ts";
import {
  type AcquireOptions,
  acquireLock,
  type HeldLockStatus,
  type LockStatus,
  readLock,
  releaseLock,
  type UnlockOptions,
} from "./locking.ts";
import { packStateManifest } from "./manifests.ts";
import { fetchCurrentManifest, openCurrentState, readCurrentState, type StatePayload } from "./state-read.ts";
import {
  commitState,
  type PreparedState,
  type PutResult,
  prepareFromVersion,
  prepareState,
  type StateInput,
  writeState,
} from "./state-write.ts";
import { listVersions, readVersion, repointTags, type VersionInfo, waitForRetention } from "./versions.ts";
import { tagsFor, versionTagCandidates, type WorkspaceTags } from "./workspace-names.ts";

/** A state's manifest facts, read without its content. */
export interface StateHead {
  /** Digest of the state manifest. */
  digest: string;
  version: number | undefined;
  updatedAt: string | undefined;
  /** Stored layer size (compressed size when gzip). */
  storedSize: number;
}

/** A state read as a stream, for states too large to hold in memory at once. */
export interface StateReader {
  /** Digest of the state manifest. */
  digest: string;
  version: number | undefined;
  updatedAt: string | undefined;
  /** Stored layer size (compressed size when gzip). */
  storedSize: number;
  gzip: boolean;
  /** The decompressed state; throws DataLossError at the end if the blob does not match its digest. */
  stream: AsyncIterable<Uint8Array>;
  /** MD5 and size of what the stream yielded; valid once it has ended. */
  md5(): Uint8Array;
  size(): number;
}

/**
 * One workspace's state: ghoten's StateMgr (get, put, delete, lock, unlock, waitForRetention) plus
 * history (list, read, restore) and streaming for large states.
 */
export class StateManager {
  readonly workspace: string;
  readonly tags: WorkspaceTags;
  readonly #ctx: CoreContext;

  constructor(ctx: CoreContext, workspace: string) {
    this.#ctx = ctx;
    this.tags = tagsFor(workspace);
    this.workspace = workspace;
  }

  /** The current state, or null when there is none. Unchanged state: one conditional GET. */
  get(opts?: CallOptions): Promise<StatePayload | null> {
    return readCurrentState(this.#ctx, this.tags, opts);
  }

  /**
   * What the state manifest says, without reading the state (one conditional GET when cached):
   * lets a caller holding a digest learn the state is unchanged without a blob download.
   */
  async head(opts?: CallOptions): Promise<StateHead | null> {
    const found = await fetchCurrentManifest(this.#ctx, this.tags, opts);
    if (!found?.manifest.layer) return null;
    const { manifest, digest } = found;
    return {
      digest,
      version: manifest.version,
      updatedAt: manifest.updatedAt,
      storedSize: manifest.layer?.size ?? 0,
    };
  }

  /** The current state as a stream, or null when there is none. */
  async openRead(opts?: CallOptions): Promise<StateReader | null> {
    const opened = await openCurrentState(this.#ctx, this.tags, opts);
    if (!opened) return null;
    const { manifest, digest, layer, stream, md5 } = opened;
    return {
      digest,
      version: manifest.version,
      updatedAt: manifest.updatedAt,
      storedSize: layer.size,
      gzip: manifest.gzip,
      stream,
      md5: () => md5.digest(),
      size: () => md5.size,
    };
  }

  /** Writes a new state. Fencing against other lock holders is the caller's (coordinator's) job. */
  put(data: Uint8Array, opts?: CallOptions): Promise<PutResult> {
    return writeState(this.#ctx, this.tags, { bytes: data }, opts);
  }

  /** Writes a new state from a stream (chunked upload; memory stays bounded). */
  putStream(stream: AsyncIterable<Uint8Array>, opts?: CallOptions): Promise<PutResult> {
    return writeState(this.#ctx, this.tags, { stream }, opts);
  }

  /**
   * The first half of a write, which needs no turn: receives and checks the body and pushes it as
   * an unreferenced layer blob. Nothing changes for readers until `commit`.
   */
  prepare(input: StateInput, opts?: CallOptions): Promise<PreparedState> {
    return prepareState(this.#ctx, this.tags, input, opts);
  }

  /** Version `version` as a prepared state: its blob exists already, nothing is pushed. */
  prepareRestore(version: number, opts?: CallOptions): Promise<PreparedState> {
    return prepareFromVersion(this.#ctx, this.tags, version, opts);
  }

  /**
   * The second half of a write: makes a prepared state current (state tag, then version tag).
   * Callers serialise commits per workspace and fence them; a prepared state is committed once.
   */
  commit(prepared: PreparedState, opts?: CallOptions): Promise<PutResult> {
    return commitState(this.#ctx, this.tags, prepared, opts);
  }

  /**
   * Removes the current state; the workspace stays, empty (its state tag points at a manifest with
   * no layers). History stays: a version tag on the same manifest is moved to a copy first.
   */
  async delete(opts?: CallOptions): Promise<void> {
    const ctx = this.#ctx;
    const found = await fetchCurrentManifest(ctx, this.tags, opts);
    if (!found?.manifest.layer) return;
    const { digest, manifest } = found;
    if (manifest.version !== undefined) {
      // Deleting the old manifest by digest would take the version tag on it along.
      for (const vtag of versionTagCandidates(this.tags, manifest.version)) {
        const shared = await ctx.target.resolve(vtag, opts);
        if (shared?.digest !== digest) continue;
        await repointTags(ctx, digest, [vtag]);
        break;
      }
    }
    await ctx.ensureEmptyBlob(opts);
    const empty = packStateManifest({ workspace: this.workspace, layer: null, nowMs: ctx.cfg.now() });
    await ctx.target.pushManifest(this.tags.state, empty, MEDIA_TYPE_OCI_MANIFEST, opts);
    ctx.stateCache.delete(this.tags.state);
    try {
      await ctx.target.deleteManifest(digest, { ...opts, tagHint: this.tags.state });
    } catch (err) {
      // The old manifest is untagged now; where a registry will not delete it, it is only clutter.
      if (!(err instanceof NotFoundError || err instanceof UnimplementedError)) throw err;
    }
  }

  /** Takes the lock; throws LockError naming the holder when someone else has it. Returns the ID. */
  async lock(info: LockInfo, opts?: CallOptions): Promise<string> {
    return (await acquireLock(this.#ctx, this.tags, info, opts)).info.id;
  }

  /**
   * Like `lock`, returning the lock as verified in the registry (digest, generation, lease). With
   * `current` (the lock as the caller just read it), the tag is not read again first.
   */
  acquireLock(info: LockInfo, opts?: AcquireOptions): Promise<HeldLockStatus> {
    return acquireLock(this.#ctx, this.tags, info, opts);
  }

  /**
   * Releases the lock held by `id` (any holder with `force`). Already unlocked is fine. With
   * `current` (the lock as the caller just read it), only its digest is deleted.
   */
  unlock(id: string, opts?: UnlockOptions): Promise<void> {
    return releaseLock(this.#ctx, this.tags, id, opts);
  }

  /** The lock as stored now; with `ifNoneMatch` (a digest seen before) a cheap change check. */
  lockStatus(opts?: CallOptions & { ifNoneMatch?: string | undefined }): Promise<LockStatus> {
    return readLock(this.#ctx, this.tags, opts);
  }

  listVersions(opts?: CallOptions): Promise<VersionInfo[]> {
    return listVersions(this.#ctx, this.tags, opts);
  }

  getVersion(version: number, opts?: CallOptions): Promise<StatePayload> {
    return readVersion(this.#ctx, this.tags, version, opts);
  }

  /** Writes version `version` again as a new state (and so a new version). */
  async restoreVersion(version: number, opts?: CallOptions): Promise<PutResult> {
    return this.commit(await this.prepareRestore(version, opts), opts);
  }

  /** Resolves when background retention for this backend has finished. */
  waitForRetention(): Promise<void> {
    return waitForRetention(this.#ctx);
  }
}
