import { promisify } from "node:util";
import { gzip as gzipCb, constants as zlibConstants } from "node:zlib";
import { sha256Digest } from "../oci/digest.ts";
import type { CallOptions, Descriptor } from "../oci/target.ts";
import type { CoreContext } from "./core-context.ts";
import { packStateManifest, parseStateManifest } from "./manifests.ts";
import { gzipStream, isMd5Checked, limitStream, Md5Tap, md5, sizeLimitError } from "./state-codec.ts";
import { fetchStateManifest } from "./state-read.ts";
import { highestVersion, scheduleRetention } from "./versions.ts";
import { MEDIA_TYPE_STATE, MEDIA_TYPE_STATE_GZIP } from "./wire-format.ts";
import { versionTag, type WorkspaceTags } from "./workspace-names.ts";

const gzipAsync = promisify(gzipCb);

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

/** The next version number, decided once per logical write (W6): never renumbered by a retry. */
async function nextVersion(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<number> {
  const current = await fetchStateManifest(ctx, tags.state, opts);
  if (current?.manifest.version !== undefined) return current.manifest.version + 1;
  // No annotation (a legacy state, an empty workspace, or history without a current state):
  // continue after the highest version tag so history is never overwritten.
  return (await highestVersion(ctx, tags.wsTag, opts)) + 1;
}

/**
 * Writes a state: layer blob first, then the manifest under the state tag, then the version tag.
 * The state is durable once the state tag moves; a failure before that leaves the old state.
 * Steady state without versioning: blob POST + PUT and one manifest PUT (3 requests).
 */
export async function writeState(
  ctx: CoreContext,
  tags: WorkspaceTags,
  input: { bytes: Uint8Array } | { stream: AsyncIterable<Uint8Array> },
  opts: CallOptions | undefined,
): Promise<PutResult> {
  const { cfg, target } = ctx;
  const limit = cfg.maxStateSize;
  const what = `state of workspace ${JSON.stringify(tags.name)}`;
  const gzip = cfg.compression === "gzip";
  const mediaType = gzip ? MEDIA_TYPE_STATE_GZIP : MEDIA_TYPE_STATE;

  const version = cfg.maxVersions > 0 ? await nextVersion(ctx, tags, opts) : undefined;
  await ctx.ensureEmptyBlob(opts);

  let layer: Descriptor;
  let sum: Uint8Array;
  let size: number;
  let keep: Uint8Array | null = null;
  if ("bytes" in input) {
    if (input.bytes.byteLength > limit) throw sizeLimitError(what, limit);
    const body = gzip
      ? new Uint8Array(await gzipAsync(input.bytes, { level: zlibConstants.Z_BEST_SPEED }))
      : input.bytes;
    layer = await target.pushBlob({ bytes: body }, mediaType, opts);
    sum = md5(input.bytes);
    size = input.bytes.byteLength;
    keep = input.bytes;
  } else {
    const tap = new Md5Tap();
    const source = input.stream;
    // A sender's declared MD5 is checked against this one sum: each byte is hashed once.
    const check = isMd5Checked(source) ? (sum: Uint8Array) => source.checkMd5(sum) : undefined;
    const plain = tap.tap(limitStream(source, limit, what), check);
    layer = await target.pushBlob({ stream: gzip ? gzipStream(plain) : plain }, mediaType, {
      ...opts,
      maxSize: gzip ? undefined : limit,
      onTooLarge: (l: number) => sizeLimitError(what, l),
    });
    sum = tap.digest();
    size = tap.size;
  }

  const manifestBytes = packStateManifest({ workspace: tags.name, layer, version, nowMs: cfg.now() });
  const digest = sha256Digest(manifestBytes);
  await target.pushManifest(tags.state, manifestBytes, "application/vnd.oci.image.manifest.v1+json", opts);
  const written = parseStateManifest(manifestBytes, `state at tag ${tags.state}`);
  ctx.stateCache.set(tags.state, {
    manifestDigest: digest,
    manifest: written,
    data: keep,
    md5: keep ? sum : null,
  });
  if (version !== undefined) {
    await target.pushManifest(
      versionTag(tags.wsTag, version),
      manifestBytes,
      "application/vnd.oci.image.manifest.v1+json",
      opts,
    );
    scheduleRetention(ctx, tags, version);
  }
  return { digest, version, md5: sum, size, storedSize: layer.size, updatedAt: written.updatedAt };
}
