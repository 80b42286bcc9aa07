import { FailedPreconditionError } from "../errors.ts";
import { parseVersionSuffix, tagsFor, type WorkspaceTags, workspaceTag } from "./workspace-names.ts";

/**
 * Whose manifest a tag holds. ghoten and this service use the same tags for every name, so some tags
 * mean two things: `state-x-v3` is workspace `x-v3`'s state and version 3 of `x` (B2), and
 * `state-ws-<16 hex>` is a hashed name's state and a workspace literally named `ws-<16 hex>` (B3).
 * The `org.terraform.workspace` annotation, which both sides always write, decides: a manifest
 * belongs to the workspace it names. A manifest without one (older writers) belongs to whoever
 * reads it, as it always did.
 */

/** The workspace a manifest's annotation names, or undefined when it names none. */
export function ownerName(annotated: string | undefined): string | undefined {
  return annotated === undefined || annotated === "" ? undefined : annotated;
}

export function ownedBy(annotated: string | undefined, name: string): boolean {
  const owner = ownerName(annotated);
  return owner === undefined || owner === name;
}

/**
 * What another workspace's manifest at `tags.state` is: a version of `owner` whose version tag is
 * this state tag (it can move to its `stver-` spelling, which both sides read), or the state of
 * another workspace whose tag is the same as ours (nothing may touch it).
 */
export type ForeignManifest =
  | { kind: "version"; owner: WorkspaceTags; version: number }
  | { kind: "state"; owner: string };

export function classifyForeign(tags: WorkspaceTags, owner: string): ForeignManifest {
  const v = parseVersionSuffix(tags.wsTag);
  if (v !== null) {
    try {
      if (workspaceTag(owner) === v.base)
        return { kind: "version", owner: tagsFor(owner), version: v.version };
    } catch {
      // An annotation that is no valid workspace name is nobody's version.
    }
  }
  return { kind: "state", owner };
}

/** The error for a state tag that holds another workspace's state: reads and writes are refused. */
export function foreignStateError(tags: WorkspaceTags, owner: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `tag ${tags.state} holds the state of workspace ${JSON.stringify(owner)}, not of ` +
      `${JSON.stringify(tags.name)}: both names map to the same tag, and the other workspace's state is ` +
      "never read or overwritten in its place; use another workspace name",
  );
}
