/**
 * The manifest graph of a layout: index.json names manifests, manifests name blobs, image indexes
 * name manifests. Garbage collection keeps what index.json reaches; lookups by digest also find
 * manifests an image index in index.json lists.
 */
import { DataLossError, FailedPreconditionError } from "../errors.ts";
import type { CallContext } from "./call-context.ts";
import { isDigest, sha256Digest } from "./digest.ts";
import type { LayoutBlobStore } from "./layout-blobs.ts";
import { type IndexEntry, type LayoutIndex, refName } from "./layout-index.ts";
import { indexChildren, isIndexType, isManifestType, referencedDescriptors } from "./layout-manifest.ts";
import { MAX_MANIFEST_BYTES } from "./media-types.ts";
import type { Descriptor } from "./target.ts";

const MAX_NESTING = 8;

function describeEntry(entry: IndexEntry): string {
  const name = refName(entry);
  return name === undefined ? `untagged manifest ${entry.digest}` : `tag ${JSON.stringify(name)}`;
}

/**
 * Digests of every sha256 blob index.json reaches. Throws rather than guess when part of the graph
 * cannot be read: a missing or corrupt manifest hides which blobs it needs. A manifest missing
 * because it was dropped since `index` was read (`dropped` says so) is skipped.
 */
export async function reachableBlobs(
  blobs: LayoutBlobStore,
  index: LayoutIndex,
  call: CallContext,
  dropped: (digest: string) => boolean = () => false,
): Promise<Set<string>> {
  const stop = (why: string) =>
    new FailedPreconditionError(`garbage collection stopped, nothing removed: ${why}`);
  const reachable = new Set<string>();
  const pending = index.manifests.map((entry) => ({
    digest: entry.digest,
    manifest: true,
    from: describeEntry(entry),
  }));
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    call.check();
    if (reachable.has(item.digest)) continue;
    if (!isDigest(item.digest)) {
      // Blobs of other algorithms live outside blobs/sha256 and are never collected; a manifest
      // among them could name sha256 blobs this code cannot see, though.
      if (item.manifest)
        throw stop(`${item.from} is manifest ${item.digest}, whose digest algorithm is not supported`);
      continue;
    }
    reachable.add(item.digest);
    if (!item.manifest) continue;
    const bytes = await blobs.readAll(item.digest, MAX_MANIFEST_BYTES);
    if (bytes === null && dropped(item.digest)) continue;
    if (bytes === null) {
      throw new DataLossError(
        `garbage collection stopped, nothing removed: manifest ${item.digest} (${item.from}) is missing, ` +
          "so the blobs it needs are unknown; remove its index.json entry or restore the blob",
      );
    }
    if (sha256Digest(bytes) !== item.digest) {
      throw new DataLossError(
        `garbage collection stopped, nothing removed: manifest ${item.digest} (${item.from}) is corrupt`,
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw stop(`manifest ${item.digest} (${item.from}) is not JSON`);
    }
    for (const ref of referencedDescriptors(doc)) {
      pending.push({
        digest: ref.digest,
        manifest: isManifestType(ref.mediaType),
        from: `named by ${item.digest}`,
      });
    }
  }
  return reachable;
}

/**
 * The descriptor of `digest` as a child of an image index that index.json lists (directly or through
 * nested indexes), with the digest of that parent. Damaged indexes are skipped: this is a lookup.
 */
export async function findInImageIndexes(
  blobs: LayoutBlobStore,
  index: LayoutIndex,
  digest: string,
): Promise<{ descriptor: Descriptor; parent: string } | undefined> {
  const seen = new Set<string>();
  type Hit = { descriptor: Descriptor; parent: string };
  const search = async (parents: readonly Descriptor[], depth: number): Promise<Hit | undefined> => {
    if (depth > MAX_NESTING) return undefined;
    for (const parent of parents) {
      if (!isIndexType(parent.mediaType) || !isDigest(parent.digest) || seen.has(parent.digest)) continue;
      seen.add(parent.digest);
      const bytes = await blobs.readAll(parent.digest, MAX_MANIFEST_BYTES).catch(() => null);
      if (bytes === null || sha256Digest(bytes) !== parent.digest) continue;
      let children: Descriptor[];
      try {
        children = indexChildren(JSON.parse(new TextDecoder().decode(bytes)));
      } catch {
        continue;
      }
      const hit = children.find((child) => child.digest === digest);
      if (hit !== undefined) return { descriptor: hit, parent: parent.digest };
      const deeper = await search(children, depth + 1);
      if (deeper !== undefined) return deeper;
    }
    return undefined;
  };
  return search(index.manifests, 0);
}
