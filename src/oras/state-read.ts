import type { CallOptions } from "../call-options.ts";
import { DataLossError, NotFoundError, TfstateError } from "../errors.ts";
import type { Descriptor } from "../oci/target.ts";
import type { CachedState, CoreContext } from "./core-context.ts";
import { type ParsedStateManifest, parseStateManifest } from "./manifests.ts";
import { collect, gunzipStream, limitStream, Md5Tap, sizeLimitError } from "./state-codec.ts";
import { classifyForeign, foreignStateError, ownedBy, ownerName } from "./tag-owner.ts";
import type { WorkspaceTags } from "./workspace-names.ts";

/** A state as read: the decompressed bytes, their MD5, and where they came from. */
export interface StatePayload {
  data: Uint8Array;
  /** MD5 of `data` (16 bytes), OpenTofu's change check. */
  md5: Uint8Array;
  /** Digest of the state manifest. */
  digest: string;
  /** Size of `data` in bytes. */
  size: number;
  /** Size of the stored layer blob (compressed size when gzip). */
  storedSize: number;
  version: number | undefined;
  updatedAt: string | undefined;
  /** The layer blob it was read from (a restore writes it again without an upload). */
  layer: Descriptor;
}

export interface ManifestAtTag {
  digest: string;
  manifest: ParsedStateManifest;
  /** The cache's entry for this manifest's layer, when it has one. */
  cached: CachedState | undefined;
}

/** A state read as a stream: the manifest's facts, then the decompressed bytes. */
export interface StateStream {
  digest: string;
  manifest: ParsedStateManifest;
  layer: Descriptor;
  /** Throws DataLossError at the end if the blob does not match its digest. */
  stream: AsyncIterable<Uint8Array>;
  /** MD5 and size of what the stream yielded; valid once it has ended. */
  md5: Md5Tap;
}

/** Wraps a failure while reading content at `tag` so data loss names the tag (B8, W9). */
export function atTag(tag: string, err: unknown): unknown {
  if (err instanceof DataLossError && !err.message.includes(tag)) {
    return new DataLossError(`state at tag ${tag}: ${err.message}`, { cause: err });
  }
  return err;
}

/**
 * Fetches and parses the state manifest at `tag`, conditionally when the cache knows a digest.
 * Returns null when the tag does not exist, or the cached entry when the registry says unchanged.
 */
export async function fetchStateManifest(
  ctx: CoreContext,
  tag: string,
  opts: CallOptions | undefined,
  useCache = true,
): Promise<ManifestAtTag | null> {
  const cached = useCache ? ctx.stateCache.get(tag) : undefined;
  let fetched: Awaited<ReturnType<CoreContext["target"]["fetchManifest"]>>;
  try {
    fetched = await ctx.target.fetchManifest(tag, { ...opts, ifNoneMatch: cached?.manifestDigest });
  } catch (err) {
    throw atTag(tag, err);
  }
  if (fetched === null) {
    ctx.stateCache.delete(tag);
    return null;
  }
  if (fetched.kind === "unchanged" && cached) {
    return { digest: cached.manifestDigest, manifest: cached.manifest, cached };
  }
  if (fetched.kind === "unchanged") {
    // A 304 we did not ask for; read again without a condition.
    return fetchStateManifest(ctx, tag, opts, false);
  }
  const manifest = parseStateManifest(fetched.bytes, `state at tag ${tag}`);
  const reuse = cached && cached.manifest.layer?.digest === manifest.layer?.digest ? cached : undefined;
  return { digest: fetched.descriptor.digest, manifest, cached: reuse };
}

/**
 * The manifest at a workspace's state tag, if it is the workspace's own: null when there is none,
 * or when the tag holds a version of another workspace (B2: `state-x-v3` written as version 3 of
 * `x`; this workspace, `x-v3`, has no state yet). Another workspace's state there (B3) is an error:
 * it is never read as this one's.
 */
export async function fetchCurrentManifest(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<ManifestAtTag | null> {
  const found = await fetchStateManifest(ctx, tags.state, opts);
  if (found === null || ownedBy(found.manifest.workspace, tags.name)) return found;
  const owner = ownerName(found.manifest.workspace) as string;
  if (classifyForeign(tags, owner).kind === "version") return null;
  throw foreignStateError(tags, owner);
}

/** The layer vanished because the tag moved on meanwhile (its old manifest was collected). */
class TagMoved extends Error {
  readonly dataLoss: DataLossError;
  constructor(dataLoss: DataLossError) {
    super(dataLoss.message);
    this.dataLoss = dataLoss;
  }
}

/** How often a read starts over when the state it was reading is replaced under it. */
const READ_ATTEMPTS = 3;

/**
 * Opens the decompressed state of the manifest `found` at `tag`: digest-verified by the target,
 * size-limited on the decompressed bytes (a gzip bomb stops at the limit), MD5 on the way.
 */
async function openLayer(
  ctx: CoreContext,
  tag: string,
  found: ManifestAtTag,
  layer: Descriptor,
  opts: CallOptions | undefined,
): Promise<StateStream> {
  const limit = ctx.cfg.maxStateSize;
  const what = `state at tag ${tag}`;
  const { gzip } = found.manifest;
  if (!gzip && layer.size > limit) throw sizeLimitError(what, limit);
  let raw: AsyncIterable<Uint8Array>;
  try {
    raw = await ctx.target.fetchBlob(layer, opts);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw atTag(tag, err);
    // The manifest names this layer, so its absence is lost data, never "no state" (OpenTofu would
    // take a 404 as an empty state and plan to recreate everything) — unless the tag has moved on
    // since its manifest was read, and the old layer went with the old manifest.
    const lost = new DataLossError(
      `state at tag ${tag} (manifest ${found.digest}): its layer blob ${layer.digest} (${layer.size} bytes) ` +
        "is missing from the store, so the state cannot be read; restore the blob or an older version",
      { cause: err },
    );
    const now = await ctx.target.resolve(tag, opts).catch(() => undefined);
    if (now !== undefined && now?.digest !== found.digest) throw new TagMoved(lost);
    throw lost;
  }
  const decoded = gzip ? gunzipStream(raw, what) : raw;
  const md5 = new Md5Tap();
  const stream = (async function* () {
    try {
      yield* md5.tap(limitStream(decoded, limit, what));
    } catch (err) {
      throw atTag(tag, err);
    }
  })();
  return { digest: found.digest, manifest: found.manifest, layer, stream, md5 };
}

/**
 * Reads the manifest with `fetch` and hands it with its layer to `use`, starting over when the tag
 * moved on between the two. Null when `fetch` finds nothing; `value` null for a manifest without a
 * layer (an empty workspace).
 */
async function onLayer<T>(
  fetch: () => Promise<ManifestAtTag | null>,
  use: (found: ManifestAtTag, layer: Descriptor) => Promise<T>,
): Promise<{ found: ManifestAtTag; value: T | null } | null> {
  for (let attempt = 1; ; attempt++) {
    const found = await fetch();
    if (found === null) return null;
    const layer = found.manifest.layer;
    if (!layer) return { found, value: null };
    try {
      return { found, value: await use(found, layer) };
    } catch (err) {
      if (!(err instanceof TagMoved)) throw err;
      if (attempt >= READ_ATTEMPTS) throw err.dataLoss;
    }
  }
}

/** Reads a whole state at `tag` through the cache; null when there is none or it is empty. */
async function readWith(
  ctx: CoreContext,
  tag: string,
  fetch: () => Promise<ManifestAtTag | null>,
  opts: CallOptions | undefined,
): Promise<StatePayload | null> {
  const read = await onLayer(fetch, async (found, layer): Promise<StatePayload> => {
    let data = found.cached?.data ?? null;
    let sum = found.cached?.md5 ?? null;
    if (data === null || sum === null) {
      const opened = await openLayer(ctx, tag, found, layer, opts);
      data = await collect(opened.stream);
      sum = opened.md5.digest();
    }
    return {
      data,
      md5: sum,
      digest: found.digest,
      size: data.byteLength,
      storedSize: layer.size,
      version: found.manifest.version,
      updatedAt: found.manifest.updatedAt,
      layer,
    };
  });
  if (read === null) return null;
  const { found, value } = read;
  ctx.stateCache.set(tag, {
    manifestDigest: found.digest,
    manifest: found.manifest,
    data: value?.data ?? null,
    md5: value?.md5 ?? null,
  });
  return value;
}

/** The workspace's current state, through the cache; null when it has none. */
export function readCurrentState(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<StatePayload | null> {
  return readWith(ctx, tags.state, () => fetchCurrentManifest(ctx, tags, opts), opts);
}

/** The workspace's current state as a stream; null when it has none. */
export async function openCurrentState(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<StateStream | null> {
  const read = await onLayer(
    () => fetchCurrentManifest(ctx, tags, opts),
    (found, layer) => openLayer(ctx, tags.state, found, layer, opts),
  );
  return read?.value ?? null;
}

/**
 * The state stored under the version tag `tag`, when it belongs to workspace `name`; null when the
 * tag is absent, empty, or holds another workspace's manifest.
 */
export function readVersionAt(
  ctx: CoreContext,
  tag: string,
  name: string,
  opts: CallOptions | undefined,
): Promise<StatePayload | null> {
  return readWith(
    ctx,
    tag,
    async () => {
      const found = await fetchStateManifest(ctx, tag, opts);
      return found !== null && ownedBy(found.manifest.workspace, name) ? found : null;
    },
    opts,
  );
}

export function isTfstateErrorOf(err: unknown, code: TfstateError["code"]): boolean {
  return err instanceof TfstateError && err.code === code;
}
