import { promisify } from "node:util";
import { gzip as gzipCb, constants as zlibConstants } from "node:zlib";
import type { CallOptions } from "../call-options.ts";
import { CallContext } from "../oci/call-context.ts";
import { sha256Digest } from "../oci/digest.ts";
import { abortableIterate } from "../oci/layout-abortable.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { Descriptor } from "../oci/target.ts";
import type { CoreContext } from "./core-context.ts";
import { packStateManifest, parseStateManifest } from "./manifests.ts";
import { gzipStream, isMd5Checked, limitStream, Md5Tap, md5, sizeLimitError } from "./state-codec.ts";
import { fetchCurrentManifest } from "./state-read.ts";
import { claimStateTag } from "./state-tag-claim.ts";
import { highestVersion, readVersion, scheduleRetention, versionTagToWrite } from "./versions.ts";
import { MEDIA_TYPE_STATE, MEDIA_TYPE_STATE_GZIP } from "./wire-format.ts";
import type { WorkspaceTags } from "./workspace-names.ts";

const gzipAsync = promisify(gzipCb);

/**
 * A state write in two steps (docs/architecture.md, correctness model). `prepareState` receives the
 * body, checks it (size limit, a declared MD5), compresses it and pushes it as a layer blob: the
 * blob is content-addressed and no tag names it yet, so this needs no lock and can run while other
 * operations on the workspace take their turns; a failure leaves at most an unreferenced blob.
 * `commitState` is the part that must take its turn: it decides the version and moves the tags.
 */

export interface PutResult {
  /** Digest of the new state manifest. */
  digest: string;
  /** Version number written, or undefined with versioning off. */
  version: number | undefined;
  md5: Uint8Array;
  size: number;
  /** Size of the stored layer blob (compressed size when gzip). */
  storedSize: number;
  /** The manifest's updated_at annotation (RFC 3339). */
  updatedAt: string | undefined;
}

/** A state body as it arrives: whole, or as a stream read once (chunked upload). */
export type StateInput = { bytes: Uint8Array } | { stream: AsyncIterable<Uint8Array> };

/** A state stored as a layer blob and checked, that no tag points at yet. */
export interface PreparedState {
  /** The workspace it was prepared for: it is committed there or nowhere. */
  readonly workspace: string;
  readonly layer: Descriptor;
  /** MD5 and size of the decompressed state. */
  readonly md5: Uint8Array;
  readonly size: number;
  /** The state itself when it was in memory anyway, for the state cache; null when streamed. */
  readonly data: Uint8Array | null;
}

/**
 * Receives, checks and stores a state body as a layer blob (blob POST + PUT in steady state).
 * Stops as soon as the caller's signal aborts or its deadline passes, even while the body's next
 * chunk is awaited.
 */
export async function prepareState(
  ctx: CoreContext,
  tags: WorkspaceTags,
  input: StateInput,
  opts: CallOptions | undefined,
): Promise<PreparedState> {
  const { cfg, target } = ctx;
  const limit = cfg.maxStateSize;
  const what = `state of workspace ${JSON.stringify(tags.name)}`;
  const gzip = cfg.compression === "gzip";
  const mediaType = gzip ? MEDIA_TYPE_STATE_GZIP : MEDIA_TYPE_STATE;
  await ctx.ensureEmptyBlob(opts);

  if ("bytes" in input) {
    const bytes = input.bytes;
    if (bytes.byteLength > limit) throw sizeLimitError(what, limit);
    const body = gzip ? new Uint8Array(await gzipAsync(bytes, { level: zlibConstants.Z_BEST_SPEED })) : bytes;
    const layer = await target.pushBlob({ bytes: body }, mediaType, opts);
    return { workspace: tags.name, layer, md5: md5(bytes), size: bytes.byteLength, data: bytes };
  }
  const tap = new Md5Tap();
  const source = input.stream;
  // A sender's declared MD5 is checked against this one sum: each byte is hashed once.
  const check = isMd5Checked(source) ? (sum: Uint8Array) => source.checkMd5(sum) : undefined;
  // A sender that goes quiet must not keep the write waiting past the caller's cancel or deadline.
  const received = abortableIterate(source, new CallContext(opts, `receiving the ${what}`));
  const plain = tap.tap(limitStream(received, limit, what), check);
  const layer = await target.pushBlob({ stream: gzip ? gzipStream(plain) : plain }, mediaType, {
    ...opts,
    maxSize: gzip ? undefined : limit,
    onTooLarge: (l: number) => sizeLimitError(what, l),
  });
  return { workspace: tags.name, layer, md5: tap.digest(), size: tap.size, data: null };
}

/**
 * A stored version as a prepared state, for writing it again: its layer blob exists already, so
 * nothing is pushed. Reads the version's manifest (and its blob, unless cached) for MD5 and size.
 */
export async function prepareFromVersion(
  ctx: CoreContext,
  tags: WorkspaceTags,
  version: number,
  opts: CallOptions | undefined,
): Promise<PreparedState> {
  const old = await readVersion(ctx, tags, version, opts);
  return { workspace: tags.name, layer: old.layer, md5: old.md5, size: old.size, data: old.data };
}

/** The next version number, decided once per logical write (W6): never renumbered by a retry. */
async function nextVersion(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<number> {
  const current = await fetchCurrentManifest(ctx, tags, opts);
  if (current?.manifest.version !== undefined) return current.manifest.version + 1;
  // No annotation (a legacy state, an empty workspace, or history without a current state):
  // continue after the highest version tag so history is never overwritten.
  return (await highestVersion(ctx, tags, opts)) + 1;
}

/**
 * Makes a prepared state the current one: the manifest under the state tag, then (with versioning)
 * the version tag and retention. The state is durable once the state tag moves; its blob exists by
 * then, so a failure before leaves the old state. Steady state without versioning: one manifest PUT.
 */
export async function commitState(
  ctx: CoreContext,
  tags: WorkspaceTags,
  prepared: PreparedState,
  opts: CallOptions | undefined,
): Promise<PutResult> {
  if (prepared.workspace !== tags.name) {
    throw new Error(
      `a state prepared for workspace ${JSON.stringify(prepared.workspace)} cannot be committed to ${JSON.stringify(tags.name)}`,
    );
  }
  const { cfg, target } = ctx;
  const { layer } = prepared;
  const version = cfg.maxVersions > 0 ? await nextVersion(ctx, tags, opts) : undefined;
  const manifestBytes = packStateManifest({ workspace: tags.name, layer, version, nowMs: cfg.now() });
  const digest = sha256Digest(manifestBytes);
  await claimStateTag(ctx, tags, opts);
  await target.pushManifest(tags.state, manifestBytes, MEDIA_TYPE_OCI_MANIFEST, opts);
  const written = parseStateManifest(manifestBytes, `state at tag ${tags.state}`);
  ctx.stateCache.set(tags.state, {
    manifestDigest: digest,
    manifest: written,
    data: prepared.data,
    md5: prepared.data ? prepared.md5 : null,
  });
  if (version !== undefined) {
    const vtag = await versionTagToWrite(ctx, tags, version, opts);
    await target.pushManifest(vtag, manifestBytes, MEDIA_TYPE_OCI_MANIFEST, opts);
    scheduleRetention(ctx, tags, version, vtag);
  }
  return {
    digest,
    version,
    md5: prepared.md5,
    size: prepared.size,
    storedSize: layer.size,
    updatedAt: written.updatedAt,
  };
}

/** A whole write in one go (prepare, then commit), for callers that serialise writes themselves. */
export async function writeState(
  ctx: CoreContext,
  tags: WorkspaceTags,
  input: StateInput,
  opts: CallOptions | undefined,
): Promise<PutResult> {
  return commitState(ctx, tags, await prepareState(ctx, tags, input, opts), opts);
}
