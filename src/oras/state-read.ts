import { DataLossError, TfstateError } from "../errors.ts";
import type { CallOptions, Descriptor } from "../oci/target.ts";
import type { CachedState, CoreContext } from "./core-context.ts";
import { type ParsedStateManifest, parseStateManifest } from "./manifests.ts";
import { collect, gunzipStream, limitStream, Md5Tap, sizeLimitError } from "./state-codec.ts";

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
}

export interface ManifestAtTag {
  digest: string;
  manifest: ParsedStateManifest;
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
): Promise<{ digest: string; manifest: ParsedStateManifest; cached: CachedState | undefined } | null> {
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
 * Streams the decompressed state of a layer: digest-verified by the target, size-limited on the
 * decompressed bytes (a gzip bomb stops at the limit), MD5 on the way.
 */
export async function openLayer(
  ctx: CoreContext,
  tag: string,
  layer: Descriptor,
  gzip: boolean,
  opts: CallOptions | undefined,
): Promise<{ stream: AsyncIterable<Uint8Array>; md5: Md5Tap }> {
  const limit = ctx.cfg.maxStateSize;
  const what = `state at tag ${tag}`;
  if (!gzip && layer.size > limit) throw sizeLimitError(what, limit);
  let raw: AsyncIterable<Uint8Array>;
  try {
    raw = await ctx.target.fetchBlob(layer, opts);
  } catch (err) {
    throw atTag(tag, err);
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
  return { stream, md5 };
}

/** Reads the whole state at `tag` (the current state or a version), through the cache. */
export async function readStateAt(
  ctx: CoreContext,
  tag: string,
  opts: CallOptions | undefined,
): Promise<StatePayload | null> {
  const found = await fetchStateManifest(ctx, tag, opts);
  if (!found) return null;
  const { digest, manifest } = found;
  if (!manifest.layer) {
    ctx.stateCache.set(tag, { manifestDigest: digest, manifest, data: null, md5: null });
    return null;
  }
  let data = found.cached?.data ?? null;
  let sum = found.cached?.md5 ?? null;
  if (data === null || sum === null) {
    const { stream, md5 } = await openLayer(ctx, tag, manifest.layer, manifest.gzip, opts);
    data = await collect(stream);
    sum = md5.digest();
  }
  ctx.stateCache.set(tag, { manifestDigest: digest, manifest, data, md5: sum });
  return {
    data,
    md5: sum,
    digest,
    size: data.byteLength,
    storedSize: manifest.layer.size,
    version: manifest.version,
    updatedAt: manifest.updatedAt,
  };
}

export function isTfstateErrorOf(err: unknown, code: TfstateError["code"]): boolean {
  return err instanceof TfstateError && err.code === code;
}
