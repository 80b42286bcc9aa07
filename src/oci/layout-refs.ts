/**
 * Reference counts over the layout's manifest graph, kept in memory so garbage collection knows
 * which blobs lost their last reference without walking the whole graph. A blob's count is the
 * number of index.json entries naming it plus the number of reachable manifests naming it. It
 * follows the same rules as the full walk (layout-graph.ts): every index.json entry is read as a
 * manifest, and every descriptor anywhere in a manifest keeps its blob.
 *
 * A manifest that is referenced but cannot be read (missing, corrupt, not JSON, an unsupported
 * digest algorithm) hides which blobs it needs: while one exists the graph is incomplete, and
 * nothing may be collected.
 */
import { isDigest, sha256Digest } from "./digest.ts";
import type { LayoutIndex } from "./layout-index.ts";
import { isManifestType, referencedDescriptors } from "./layout-manifest.ts";

/** One blob a manifest names; `manifest` when its content is itself a manifest to follow. */
export interface Link {
  readonly digest: string;
  readonly manifest: boolean;
}

/** What a manifest's content says it needs, or why that cannot be known. */
export type Links = readonly Link[] | { readonly unreadable: string };

function isLinkList(links: Links | undefined): links is readonly Link[] {
  return Array.isArray(links);
}

/** Per digest: how many index.json entries name it now minus before. */
export type EntryDelta = ReadonlyMap<string, number>;

export function entryDelta(prev: LayoutIndex, next: LayoutIndex): EntryDelta {
  const delta = new Map<string, number>();
  for (const entry of next.manifests) delta.set(entry.digest, (delta.get(entry.digest) ?? 0) + 1);
  for (const entry of prev.manifests) delta.set(entry.digest, (delta.get(entry.digest) ?? 0) - 1);
  for (const [digest, n] of delta) if (n === 0) delta.delete(digest);
  return delta;
}

/** The blobs a manifest's bytes name, each once. */
export function linksOf(digest: string, bytes: Uint8Array | null): Links {
  if (bytes === null) return { unreadable: "its blob is missing" };
  if (sha256Digest(bytes) !== digest) return { unreadable: "its blob is corrupt" };
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return { unreadable: "it is not JSON" };
  }
  const links = new Map<string, Link>();
  for (const ref of referencedDescriptors(doc)) {
    const manifest = isManifestType(ref.mediaType);
    // A digest named both ways is followed: erring towards keeping is safe.
    if (!links.get(ref.digest)?.manifest) links.set(ref.digest, { digest: ref.digest, manifest });
  }
  return [...links.values()];
}

export interface RefChanges {
  /** Blobs whose count rose from zero. */
  gained: string[];
  /** Blobs whose count fell to zero: candidates for collection. */
  dropped: string[];
}

export class LayoutReferences {
  private readonly counts = new Map<string, number>();
  /** Referenced manifests whose links are counted. */
  private readonly nodes = new Map<string, readonly Link[]>();
  /** Referenced manifests whose links are unknown, with the reason. */
  private readonly unknown = new Map<string, string>();

  count(digest: string): number {
    return this.counts.get(digest) ?? 0;
  }

  /** Distinct blobs referenced (sha256 ones: what blobs/sha256 must hold). */
  get size(): number {
    return this.counts.size;
  }

  isUnknown(digest: string): boolean {
    return this.unknown.has(digest);
  }

  /** Why collection must wait, or undefined when every referenced manifest's links are known. */
  incompleteReason(): string | undefined {
    for (const [digest, why] of this.unknown) return `manifest ${digest} cannot be read: ${why}`;
    return undefined;
  }

  /**
   * Reads the manifests an index change will start to reference (and the ones they reach), so that
   * apply() can run without awaiting. `provided` holds bytes the caller has in hand.
   */
  async prepare(
    delta: EntryDelta,
    provided: ReadonlyMap<string, Uint8Array>,
    read: (digest: string) => Promise<Uint8Array | null>,
  ): Promise<Map<string, Links>> {
    const loaded = new Map<string, Links>();
    const pending: string[] = [];
    for (const [digest, n] of delta) if (n > 0) pending.push(digest);
    for (const digest of provided.keys()) if (this.unknown.has(digest)) pending.push(digest);
    for (let digest = pending.pop(); digest !== undefined; digest = pending.pop()) {
      if (loaded.has(digest) || this.nodes.has(digest)) continue;
      if (this.unknown.has(digest) && !provided.has(digest)) continue;
      let links: Links;
      if (!isDigest(digest)) {
        links = { unreadable: "its digest algorithm is not supported" };
      } else {
        try {
          links = linksOf(digest, provided.get(digest) ?? (await read(digest)));
        } catch (err) {
          links = { unreadable: `it cannot be read (${err instanceof Error ? err.message : String(err)})` };
        }
      }
      loaded.set(digest, links);
      if (isLinkList(links)) for (const link of links) if (link.manifest) pending.push(link.digest);
    }
    return loaded;
  }

  /**
   * Applies an index change (synchronously, so no collection decision sees half of it). Additions
   * run first, so an entry that moves between tags never passes through zero. `loaded` comes from
   * prepare() for the same change; a manifest it lacks is recorded as unknown.
   */
  apply(delta: EntryDelta, loaded: ReadonlyMap<string, Links>): RefChanges {
    const changes: RefChanges = { gained: [], dropped: [] };
    const up: Array<{ digest: string; n: number; manifest: boolean }> = [];
    for (const [digest, n] of delta) if (n > 0) up.push({ digest, n, manifest: true });
    // A manifest re-read (the caller had its bytes) whose links were unknown: count them now.
    for (const digest of loaded.keys()) {
      if (this.unknown.has(digest) && this.count(digest) > 0) up.push({ digest, n: 0, manifest: true });
    }
    for (let item = up.pop(); item !== undefined; item = up.pop()) {
      const before = this.count(item.digest);
      if (item.n > 0) {
        this.counts.set(item.digest, before + item.n);
        if (before === 0) changes.gained.push(item.digest);
      }
      if (!item.manifest || this.nodes.has(item.digest)) continue;
      const links = loaded.get(item.digest);
      if (!isLinkList(links)) {
        if (!this.unknown.has(item.digest) || links !== undefined) {
          this.unknown.set(item.digest, links?.unreadable ?? "it was not read");
        }
        continue;
      }
      this.unknown.delete(item.digest);
      this.nodes.set(item.digest, links);
      for (const link of links) {
        // Blobs of other algorithms live outside blobs/sha256 and are never collected; a manifest
        // among them is recorded as unknown, as the full walk refuses it.
        if (isDigest(link.digest) || link.manifest)
          up.push({ digest: link.digest, n: 1, manifest: link.manifest });
      }
    }
    const down: Array<{ digest: string; n: number }> = [];
    for (const [digest, n] of delta) if (n < 0) down.push({ digest, n: -n });
    for (let item = down.pop(); item !== undefined; item = down.pop()) {
      const left = this.count(item.digest) - item.n;
      if (left > 0) {
        this.counts.set(item.digest, left);
        continue;
      }
      this.counts.delete(item.digest);
      this.unknown.delete(item.digest);
      if (isDigest(item.digest)) changes.dropped.push(item.digest);
      const links = this.nodes.get(item.digest);
      this.nodes.delete(item.digest);
      if (links === undefined) continue;
      for (const link of links) {
        if (isDigest(link.digest) || link.manifest) down.push({ digest: link.digest, n: 1 });
      }
    }
    return changes;
  }
}
