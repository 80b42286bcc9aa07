import type { CallOptions } from "../call-options.ts";
import { EMPTY_BLOB, EMPTY_DIGEST, MEDIA_TYPE_EMPTY, MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { Target } from "../oci/target.ts";
import { packStateManifest } from "./manifests.ts";
import { DEFAULT_WORKSPACE } from "./wire-format.ts";
import { tagsFor } from "./workspace-names.ts";

/**
 * Gives `default` the empty state manifest that createWorkspace gives other workspaces (W7), when
 * its state tag is missing, so a fresh store already has `state-default` for OCI tools to read
 * (`skopeo copy oci:data:state-default …`). ghoten reads it as "no state", as before. Returns true
 * when it wrote the manifest. Tag and write are not atomic: the caller runs it where no write of
 * `default` can interleave (the coordinator's queue for the workspace).
 */
export async function ensureDefaultWorkspace(
  target: Target,
  opts: CallOptions | undefined,
  now: () => number = Date.now,
): Promise<boolean> {
  const { state } = tagsFor(DEFAULT_WORKSPACE);
  if (await target.resolve(state, opts)) return false;
  if (!(await target.blobExists(EMPTY_DIGEST, opts))) {
    await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY, opts);
  }
  const bytes = packStateManifest({ workspace: DEFAULT_WORKSPACE, layer: null, nowMs: now() });
  await target.pushManifest(state, bytes, MEDIA_TYPE_OCI_MANIFEST, opts);
  return true;
}
