import type { CallOptions } from "../call-options.ts";
import { mapLimit } from "../concurrency.ts";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, withContext } from "../errors.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { CoreContext } from "./core-context.ts";
import { lockHeldError } from "./lock-error.ts";
import { holderOf, readLock } from "./locking.ts";
import { annotatedWorkspace, packStateManifest } from "./manifests.ts";
import { fetchCurrentManifest, readCurrentState } from "./state-read.ts";
import { describeManaged, managedResources } from "./state-resources.ts";
import { claimStateTag } from "./state-tag-claim.ts";
import { ownedBy, ownerName } from "./tag-owner.ts";
import { versionsInTags } from "./versions.ts";
import { DEFAULT_WORKSPACE } from "./wire-format.ts";
import {
  hashedWorkspaceTag,
  isHashedWorkspaceTag,
  parseStateTag,
  type WorkspaceTags,
  workspaceTag,
} from "./workspace-names.ts";

/** Names of hashed tags whose annotation hashes back to the tag: fixed forever, so cached. */
const hashedNames = new WeakMap<CoreContext, Map<string, string>>();

/** The workspace the manifest at `tag` names; "" when it names none, null when the tag is gone. */
async function annotatedName(
  ctx: CoreContext,
  tag: string,
  opts: CallOptions | undefined,
): Promise<string | null> {
  const fetched = await ctx.target.fetchManifest(tag, opts);
  if (fetched === null || fetched.kind !== "manifest") return null;
  return ownerName(annotatedWorkspace(fetched.bytes)) ?? "";
}

/**
 * Workspace names, read from the tag list as ghoten does (§1), with its gaps closed:
 * - `state-<t>` is workspace `<t>`, read from the tag alone when only that workspace can have it;
 * - a hashed-shape tag (`state-ws-<16 hex>`) is named by its annotation;
 * - `state-<x>-v<N>` is version N of `<x>` or the state of a workspace named `<x>-v<N>` (B2), so its
 *   annotation decides (one GET each): a workspace when the manifest is its own state, never a
 *   phantom made of orphaned history; ghoten hides such workspaces whenever `state-<x>` exists.
 * `default` is always there.
 */
export async function listWorkspaces(ctx: CoreContext, opts: CallOptions | undefined): Promise<string[]> {
  const tags = await ctx.target.listTags(opts);
  const names = new Set<string>([DEFAULT_WORKSPACE]);
  const lookups: { tag: string; literal: string; hashed: boolean }[] = [];
  let cache = hashedNames.get(ctx);
  if (!cache) {
    cache = new Map();
    hashedNames.set(ctx, cache);
  }
  for (const tag of tags) {
    const p = parseStateTag(tag);
    if (!p || (p.kind === "version" && p.spelling === "stver")) continue;
    const literal = tag.slice("state-".length);
    if (p.kind === "version") {
      lookups.push({ tag, literal, hashed: false });
    } else if (isHashedWorkspaceTag(p.wsTag)) {
      const known = cache.get(p.wsTag);
      if (known !== undefined) names.add(known);
      else lookups.push({ tag, literal, hashed: true });
    } else {
      names.add(p.wsTag);
    }
  }
  const resolved = await mapLimit(lookups, 16, async (l) => ({
    ...l,
    name: await annotatedName(ctx, l.tag, opts),
  }));
  for (const { tag, literal, hashed, name } of resolved) {
    if (name === null) continue; // deleted since the listing
    const real = name === "" ? literal : name;
    // A manifest is a workspace's state only under that workspace's own state tag.
    if (`state-${workspaceTag(real)}` !== tag) continue;
    if (hashed && hashedWorkspaceTag(real) === literal) cache.set(literal, real);
    names.add(real);
  }
  return [...names].sort();
}

export interface WorkspaceInfo {
  name: string;
  /** The workspace exists (it has a state tag, or it is `default`). */
  exists: boolean;
  /** It holds a state (a manifest with a layer). */
  hasState: boolean;
  /** Stored layer size in bytes (compressed when gzip). */
  storedSize: number;
  updatedAt: string | undefined;
  version: number | undefined;
  /** Digest of the state manifest, when there is one. */
  digest: string | undefined;
}

export async function describeWorkspace(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<WorkspaceInfo> {
  const { name } = tags;
  const found = await fetchCurrentManifest(ctx, tags, opts);
  return {
    name,
    exists: found !== null || name === DEFAULT_WORKSPACE,
    hasState: found?.manifest.layer != null,
    storedSize: found?.manifest.layer?.size ?? 0,
    updatedAt: found?.manifest.updatedAt,
    version: found?.manifest.version,
    digest: found?.digest,
  };
}

/**
 * Makes a workspace visible at once (W7) by writing a state manifest with no layers, which ghoten
 * reads as "no state" and lists as a workspace.
 */
export async function createWorkspace(
  ctx: CoreContext,
  tags: WorkspaceTags,
  opts: CallOptions | undefined,
): Promise<void> {
  const { name } = tags;
  if (name === DEFAULT_WORKSPACE || (await fetchCurrentManifest(ctx, tags, opts)) !== null) {
    throw new AlreadyExistsError(`workspace ${JSON.stringify(name)} already exists`);
  }
  await ctx.ensureEmptyBlob(opts);
  await claimStateTag(ctx, tags, opts);
  const bytes = packStateManifest({ workspace: name, layer: null, nowMs: ctx.cfg.now() });
  await ctx.target.pushManifest(tags.state, bytes, MEDIA_TYPE_OCI_MANIFEST, opts);
}

export interface DeleteWorkspaceOptions extends CallOptions {
  /** The caller's lock ID: a lock held with it does not stand in the way of a delete without force. */
  lockId?: string | undefined;
}

/**
 * Deletes a workspace: its state, its history (exactly its own version tags, never a prefix match:
 * B1), its lock and its sentinel. Without `force`, as Terraform's `workspace delete` without
 * `-force`: a workspace locked by anyone but `lockId` is refused (LockError), and so is one whose
 * state still manages resources, or whose state cannot be read for them (FailedPreconditionError
 * naming the count, or why). A delete the registry refuses is an error, never a silent success (B5).
 */
export async function deleteWorkspace(
  ctx: CoreContext,
  tags: WorkspaceTags,
  force: boolean,
  opts: DeleteWorkspaceOptions | undefined,
): Promise<void> {
  const { name } = tags;
  if (name === DEFAULT_WORKSPACE) {
    throw new FailedPreconditionError('the "default" workspace cannot be deleted');
  }
  if (!force) await assertDeletable(ctx, name, tags, opts);
  const present = new Set(await ctx.target.listTags(opts));
  const doomed = [
    tags.state,
    ...[...versionsInTags(present, tags)].sort(([a], [b]) => a - b).flatMap(([, found]) => found),
    tags.locked,
    tags.unlocked,
  ].filter((t) => present.has(t));
  if (doomed.length === 0) throw new NotFoundError(`workspace ${JSON.stringify(name)} does not exist`);
  const done = new Set<string>();
  for (const tag of doomed) {
    const fetched = await ctx.target.fetchManifest(tag, opts);
    if (fetched?.kind !== "manifest" || done.has(fetched.descriptor.digest)) continue;
    // Another workspace's manifest under one of our tags (B2, B3) is not ours to delete.
    if (!ownedBy(annotatedWorkspace(fetched.bytes), name)) continue;
    const desc = fetched.descriptor;
    try {
      await ctx.target.deleteManifest(desc.digest, { ...opts, tagHint: tag });
    } catch (err) {
      if (!(err instanceof NotFoundError)) {
        throw err instanceof Error
          ? withContext(err, `deleting workspace ${JSON.stringify(name)} (tag ${tag})`)
          : err;
      }
    }
    done.add(desc.digest);
  }
  ctx.stateCache.delete(tags.state);
}

async function assertDeletable(
  ctx: CoreContext,
  name: string,
  tags: WorkspaceTags,
  opts: DeleteWorkspaceOptions | undefined,
): Promise<void> {
  const ws = JSON.stringify(name);
  const lock = await readLock(ctx, tags, opts);
  if ((lock.state === "locked" || lock.state === "corrupt") && lock.info.id !== (opts?.lockId ?? "")) {
    throw lockHeldError(name, tags.locked, holderOf(lock), "; unlock it first, or delete with force");
  }
  const state = await readCurrentState(ctx, tags, opts);
  if (state === null || state.size === 0) return;
  const found = managedResources(state.data);
  if (found.kind === "opaque") {
    throw new FailedPreconditionError(
      `workspace ${ws} has a state whose resources cannot be counted (${found.reason}); ` +
        "delete with force to delete it anyway",
    );
  }
  if (found.addresses.length > 0) {
    throw new FailedPreconditionError(
      `workspace ${ws} still has resources in its state: ${describeManaged(found.addresses)}; ` +
        "destroy them first, or delete with force to forget them",
    );
  }
}
