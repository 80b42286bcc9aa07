import type { CallOptions } from "../call-options.ts";
import { mapLimit } from "../concurrency.ts";
import { NotFoundError, UnimplementedError } from "../errors.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { CoreContext } from "./core-context.ts";
import { annotatedWorkspace, packStateManifest, parseStateManifest } from "./manifests.ts";
import { fetchStateManifest, readVersionAt, type StatePayload } from "./state-read.ts";
import { ownedBy } from "./tag-owner.ts";
import { parseStateTag, versionTagCandidates, type WorkspaceTags } from "./workspace-names.ts";

/**
 * State history (docs/oras-wire-format.md §5): version tags `state-<wsTag>-v<N>`, or the `stver-`
 * spellings where that tag is another workspace's or too long (versionTagCandidates), and retention
 * that runs in the background, once at a time per workspace, awaited at shutdown, with failures
 * logged at warn and counted (W5). A version tag counts only when its manifest is the workspace's
 * own (tag-owner.ts).
 */

export interface VersionInfo {
  version: number;
  /** The tag it is stored under. */
  tag: string;
  /** Digest of the version's manifest. */
  digest: string;
  /** When it was written (the manifest's updated_at annotation), RFC 3339. */
  updatedAt: string | undefined;
  /** Size of the stored layer in bytes (compressed size when gzip). */
  storedSize: number;
  gzip: boolean;
}

/**
 * Version numbers of one workspace found in a tag list, each with the tags present that may hold
 * it, in the order versionTagCandidates prefers. Whose each tag is, only its manifest tells.
 */
export function versionsInTags(tagList: Iterable<string>, tags: WorkspaceTags): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const tag of tagList) {
    const p = parseStateTag(tag);
    if (p?.kind !== "version") continue;
    const candidates = versionTagCandidates(tags, p.version);
    if (!candidates.includes(tag)) continue;
    const found = out.get(p.version) ?? [];
    found.push(tag);
    found.sort((a, b) => candidates.indexOf(a) - candidates.indexOf(b));
    out.set(p.version, found);
  }
  return out;
}

/**
 * The highest version the workspace has in the registry, 0 for none; only its own manifests count
 * (B2: `state-<ws>-v<N>` may be the state of a workspace named `<ws>-v<N>`). Reads the tag list,
 * then manifests from the top until one is the workspace's own (usually the first).
 */
export async function highestVersion(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<number> {
  const versions = [...versionsInTags(await ctx.target.listTags(opts), tags)].sort(([a], [b]) => b - a);
  for (const [version, candidates] of versions) {
    for (const tag of candidates) {
      const fetched = await ctx.target.fetchManifest(tag, opts);
      if (fetched?.kind === "manifest" && ownedBy(annotatedWorkspace(fetched.bytes), tags.name))
        return version;
    }
  }
  return 0;
}

export async function listVersions(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<VersionInfo[]> {
  const found = [...versionsInTags(await ctx.target.listTags(opts), tags)].sort(([a], [b]) => a - b);
  const out = await mapLimit(found, 10, async ([version, candidates]) => {
    for (const tag of candidates) {
      const m = await fetchStateManifest(ctx, tag, opts, false);
      // Deleted since the listing, or another workspace's (B2): try the next spelling.
      if (!m || !ownedBy(m.manifest.workspace, tags.name)) continue;
      return {
        version,
        tag,
        digest: m.digest,
        updatedAt: m.manifest.updatedAt,
        storedSize: m.manifest.layer?.size ?? 0,
        gzip: m.manifest.gzip,
      } satisfies VersionInfo;
    }
    return null;
  });
  return out.filter((v): v is VersionInfo => v !== null);
}

export async function readVersion(
  ctx: CoreContext,
  tags: WorkspaceTags,
  version: number,
  opts: CallOptions | undefined,
): Promise<StatePayload> {
  for (const tag of versionTagCandidates(tags, version)) {
    const payload = await readVersionAt(ctx, tag, tags.name, opts);
    if (payload) return payload;
  }
  throw new NotFoundError(`workspace ${JSON.stringify(tags.name)} has no version ${version}`);
}

/**
 * Where version `n` is written: ghoten's `state-<wsTag>-v<N>`, unless that tag is the state of
 * another workspace (B2: one named `<name>-v<N>`, which it must never overwrite), then the `stver-`
 * spelling; a name too long for both uses its hash (versionTagCandidates). One GET of the tag, a
 * 404 in the usual case.
 */
export async function versionTagToWrite(
  ctx: CoreContext,
  tags: WorkspaceTags,
  n: number,
  opts: CallOptions | undefined,
): Promise<string> {
  const [first, ...rest] = versionTagCandidates(tags, n) as [string, ...string[]];
  if (!first.startsWith("state-")) return first;
  const fetched = await ctx.target.fetchManifest(first, opts);
  if (fetched?.kind !== "manifest" || ownedBy(annotatedWorkspace(fetched.bytes), tags.name)) return first;
  return rest[0] ?? first;
}

interface RetentionRun {
  promise: Promise<void>;
  /** A write happened while this run was going: run once more when it ends. */
  again: boolean;
  latest: number;
  latestTag: string;
}

const runs = new WeakMap<CoreContext, Map<string, RetentionRun>>();

/**
 * Starts retention for a workspace after writing version `written` under `writtenTag`; coalesced
 * while one is running.
 */
export function scheduleRetention(
  ctx: CoreContext,
  tags: WorkspaceTags,
  written: number,
  writtenTag: string,
): void {
  let perWs = runs.get(ctx);
  if (!perWs) {
    perWs = new Map();
    runs.set(ctx, perWs);
  }
  const existing = perWs.get(tags.wsTag);
  if (existing) {
    existing.again = true;
    if (written > existing.latest) {
      existing.latest = written;
      existing.latestTag = writtenTag;
    }
    return;
  }
  const run: RetentionRun = {
    promise: Promise.resolve(),
    again: false,
    latest: written,
    latestTag: writtenTag,
  };
  const map = perWs;
  run.promise = (async () => {
    do {
      run.again = false;
      try {
        await applyRetention(ctx, tags, run.latest, run.latestTag);
      } catch (err) {
        ctx.retentionFailures.add(1);
        ctx.logger.warn("version retention failed; a later write retries it", {
          workspace: tags.name,
          error: err,
        });
      }
    } while (run.again);
    map.delete(tags.wsTag);
  })();
  map.set(tags.wsTag, run);
}

/** Resolves once no retention run is pending (call before exit: ghoten issue #58). */
export async function waitForRetention(ctx: CoreContext): Promise<void> {
  const perWs = runs.get(ctx);
  while (perWs && perWs.size > 0) await Promise.all([...perWs.values()].map((r) => r.promise));
}

async function applyRetention(
  ctx: CoreContext,
  tags: WorkspaceTags,
  written: number,
  writtenTag: string,
): Promise<void> {
  const max = ctx.cfg.maxVersions;
  if (max <= 0) return;
  const { target } = ctx;
  const versions = versionsInTags(await target.listTags(), tags);
  // Listings can lag behind a write (eventual consistency).
  if (!versions.get(written)?.includes(writtenTag)) {
    versions.set(written, [...(versions.get(written) ?? []), writtenTag]);
  }
  if (versions.size <= max) return;
  const pairs = [...versions].flatMap(([n, candidates]) => candidates.map((tag) => ({ n, tag })));
  const [current, resolved] = await Promise.all([
    target.resolve(tags.state),
    mapLimit(pairs, 10, async ({ n, tag }) => ({ n, tag, fetched: await target.fetchManifest(tag) })),
  ]);
  // Only the workspace's own manifests are versions of it (B2: `state-<ws>-v<N>` may be the state
  // of a workspace named `<ws>-v<N>`).
  const own = resolved.flatMap(({ n, tag, fetched }) =>
    fetched?.kind === "manifest" && ownedBy(annotatedWorkspace(fetched.bytes), tags.name)
      ? [{ n, tag, digest: fetched.descriptor.digest }]
      : [],
  );
  const numbers = [...new Set(own.map((v) => v.n))].sort((a, b) => a - b);
  if (numbers.length <= max) return;
  const drop = new Set(numbers.slice(0, numbers.length - max));
  const groups = new Map<string, { remove: string[]; keep: string[] }>();
  for (const { n, tag, digest } of own) {
    if (digest === current?.digest) continue; // never delete the current state
    const g = groups.get(digest) ?? { remove: [], keep: [] };
    (drop.has(n) ? g.remove : g.keep).push(tag);
    groups.set(digest, g);
  }
  for (const [digest, g] of groups) {
    if (g.remove.length === 0) continue;
    // Deleting by digest removes every tag on it; move tags we keep to a copy first.
    if (g.keep.length > 0) await repointTags(ctx, digest, g.keep);
    try {
      await target.deleteManifest(digest, { tagHint: g.remove[0] });
    } catch (err) {
      if (err instanceof NotFoundError) continue;
      if (err instanceof UnimplementedError) {
        ctx.logger.warn("registry refuses deletes; old versions stay", {
          workspace: tags.name,
          tag: g.remove[0],
        });
        return;
      }
      throw err;
    }
  }
}

/** Re-packs the manifest at `digest` (same layer and version, new updated_at) under `tags`. */
export async function repointTags(ctx: CoreContext, digest: string, tags: string[]): Promise<void> {
  const fetched = await ctx.target.fetchManifest(digest);
  if (fetched?.kind !== "manifest") return;
  const m = parseStateManifest(fetched.bytes, `state manifest ${digest}`);
  const bytes = packStateManifest({
    workspace: m.workspace ?? "",
    layer: m.layer,
    version: m.version,
    nowMs: ctx.cfg.now(),
  });
  for (const tag of tags) await ctx.target.pushManifest(tag, bytes, MEDIA_TYPE_OCI_MANIFEST);
}
