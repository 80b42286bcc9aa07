import type { CallOptions } from "../call-options.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { CoreContext } from "./core-context.ts";
import { annotatedWorkspace } from "./manifests.ts";
import { classifyForeign, foreignStateError, ownedBy, ownerName } from "./tag-owner.ts";
import type { WorkspaceTags } from "./workspace-names.ts";

/**
 * Makes a workspace's state tag ready to take its next manifest. Only an ambiguous name can find
 * another workspace's manifest there (tag-owner.ts): another workspace's version (B2) is first copied
 * to its `stver-` spelling, which both sides read, so no version is lost; another workspace's state
 * (B3) is refused, never overwritten. One GET (conditional when cached) for ambiguous names only.
 */
export async function claimStateTag(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<void> {
  if (!tags.ambiguous) return;
  // Two names can share this tag, and so its cache entry: only a manifest known to be ours is sent.
  const cached = ctx.stateCache.get(tags.state);
  const ours = cached && ownedBy(cached.manifest.workspace, tags.name) ? cached.manifestDigest : undefined;
  const fetched = await ctx.target.fetchManifest(tags.state, { ...opts, ifNoneMatch: ours });
  if (fetched === null || fetched.kind === "unchanged") return;
  const annotated = annotatedWorkspace(fetched.bytes);
  if (ownedBy(annotated, tags.name)) return;
  const owner = ownerName(annotated) as string;
  const foreign = classifyForeign(tags, owner);
  if (foreign.kind === "state") throw foreignStateError(tags, owner);
  const moved = `stver-${foreign.owner.wsTag}-v${foreign.version}`;
  const there = await ctx.target.fetchManifest(moved, opts);
  if (there === null) await ctx.target.pushManifest(moved, fetched.bytes, MEDIA_TYPE_OCI_MANIFEST, opts);
  ctx.logger.info("moved another workspace's version out of this workspace's state tag", {
    workspace: tags.name,
    tag: tags.state,
    versionOf: owner,
    version: foreign.version,
    movedTo: moved,
    alreadyThere: there !== null,
  });
}
