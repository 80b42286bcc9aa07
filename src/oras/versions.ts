import { mapLimit } from "../concurrency.ts";
import { NotFoundError, UnimplementedError } from "../errors.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { CallOptions } from "../oci/target.ts";
import type { CoreContext } from "./core-context.ts";
import { annotatedWorkspace, packStateManifest, parseStateManifest } from "./manifests.ts";
import { fetchStateManifest, readStateAt, type StatePayload } from "./state-read.ts";
import { parseStateTag, versionTagCandidates, type WorkspaceTags } from "./workspace-names.ts";

/**
 * State history (docs/oras-wire-format.md §5): version tags `state-<wsTag>-v<N>` (we also read the
 * `stver-` spelling), and retention that runs in the background, once at a time per workspace,
 * awaited at shutdown, with failures logged at warn and counted (W5).
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

/** Version numbers of one workspace found in a tag list, with the tag each is stored under. */
export function versionsInTags(tags: Iterable<string>, wsTag: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const tag of tags) {
    const p = parseStateTag(tag);
    if (p?.kind !== "version" || p.wsTag !== wsTag) continue;
    // Prefer the spelling we write when both exist.
    if (!out.has(p.version) || p.spelling === "state") out.set(p.version, tag);
  }
  return out;
}

export async function highestVersion(
  ctx: CoreContext,
  wsTag: string,
  opts: CallOptions | undefined,
): Promise<number> {
  const versions = versionsInTags(await ctx.target.listTags(opts), wsTag);
  return versions.size === 0 ? 0 : Math.max(...versions.keys());
}

export async function listVersions(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<VersionInfo[]> {
  const found = [...versionsInTags(await ctx.target.listTags(opts), tags.wsTag)].sort(([a], [b]) => a - b);
  const out = await mapLimit(found, 10, async ([version, tag]) => {
    const m = await fetchStateManifest(ctx, tag, opts, false);
    if (!m) return null; // deleted between the listing and the read
    if (m.manifest.workspace !== undefined && m.manifest.workspace !== tags.name) return null; // B2
    return {
      version,
      tag,
      digest: m.digest,
      updatedAt: m.manifest.updatedAt,
      storedSize: m.manifest.layer?.size ?? 0,
      gzip: m.manifest.gzip,
    } satisfies VersionInfo;
  });
  return out.filter((v): v is VersionInfo => v !== null);
}

export async function readVersion(
  ctx: CoreContext,
  tags: WorkspaceTags,
  version: number,
  opts: CallOptions | undefined,
): Promise<StatePayload> {
  for (const tag of versionTagCandidates(tags.wsTag, version)) {
    const payload = await readStateAt(ctx, tag, opts);
    if (payload) return payload;
  }
  throw new NotFoundError(`workspace ${JSON.stringify(tags.name)} has no version ${version}`);
}

interface RetentionRun {
  promise: Promise<void>;
  /** A write happened while this run was going: run once more when it ends. */
  again: boolean;
  latest: number;
}

const runs = new WeakMap<CoreContext, Map<string, RetentionRun>>();

/** Starts retention for a workspace after a versioned write; coalesced while one is running. */
export function scheduleRetention(ctx: CoreContext, tags: WorkspaceTags, written: number): void {
  let perWs = runs.get(ctx);
  if (!perWs) {
    perWs = new Map();
    runs.set(ctx, perWs);
  }
  const existing = perWs.get(tags.wsTag);
  if (existing) {
    existing.again = true;
    existing.latest = Math.max(existing.latest, written);
    return;
  }
  const run: RetentionRun = { promise: Promise.resolve(), again: false, latest: written };
  const map = perWs;
  run.promise = (async () => {
    do {
      run.again = false;
      try {
        await applyRetention(ctx, tags, run.latest);
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

async function applyRetention(ctx: CoreContext, tags: WorkspaceTags, written: number): Promise<void> {
  const max = ctx.cfg.maxVersions;
  if (max <= 0) return;
  const { target } = ctx;
  const versions = versionsInTags(await target.listTags(), tags.wsTag);
  // Listings can lag behind a write (eventual consistency).
  if (!versions.has(written)) versions.set(written, `state-${tags.wsTag}-v${written}`);
  if (versions.size <= max) return;
  const sorted = [...versions.keys()].sort((a, b) => a - b);
  const drop = new Set(sorted.slice(0, sorted.length - max));
  const current = await target.resolve(tags.state);
  const resolved = await mapLimit([...versions], 10, async ([n, tag]) => ({
    n,
    tag,
    fetched: await target.fetchManifest(tag),
  }));
  const groups = new Map<string, { remove: string[]; keep: string[] }>();
  for (const { n, tag, fetched } of resolved) {
    if (fetched?.kind !== "manifest") continue;
    const digest = fetched.descriptor.digest;
    if (digest === current?.digest) continue; // never delete the current state
    const owner = annotatedWorkspace(fetched.bytes);
    if (owner !== undefined && owner !== tags.name) continue; // another workspace's tag (B2)
    const desc = { digest };
    const g = groups.get(desc.digest) ?? { remove: [], keep: [] };
    (drop.has(n) ? g.remove : g.keep).push(tag);
    groups.set(desc.digest, g);
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
