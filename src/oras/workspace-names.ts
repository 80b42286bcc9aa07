import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../errors.ts";
import { MAX_VERSION_NUMBER } from "./wire-format.ts";

/**
 * Workspace names and the tags derived from them (docs/oras-wire-format.md §1, decisions B1–B4).
 *
 * `wsTag` is exactly ghoten's for every name ghoten can use: the name itself when it is a valid OCI
 * tag, `ws-<16 hex>` otherwise, so both sides always read and write the same tags. The one
 * difference: a valid tag too long for `locked-<name>` to fit in 128 characters (122 to 128
 * characters) is hashed, because ghoten's own tags for it are refused by every registry. Names that
 * look like another workspace's tags (`<x>-v<N>`, `ws-<16 hex>`) stay literal; the
 * `org.terraform.workspace` annotation tells whose manifest a tag holds (see tag-owner.ts).
 */

/** OCI tag grammar as oras-go validates it; `\w` is ASCII only. */
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HASHED_RE = /^ws-[0-9a-f]{16}$/;
export const MAX_TAG_LENGTH = 128;
/** The longest name used literally: `locked-<name>` must fit. */
const MAX_LITERAL_NAME = MAX_TAG_LENGTH - "locked-".length;
/** A wsTag longer than this has version numbers whose `state-<wsTag>-v<N>` does not fit. */
const MAX_VERSIONED_WS_TAG = MAX_TAG_LENGTH - "state-".length - `-v${MAX_VERSION_NUMBER}`.length;
/** Names are stored in an annotation, so they may be long, but not unbounded. */
export const MAX_WORKSPACE_NAME_BYTES = 255;

export function validateWorkspaceName(name: unknown): asserts name is string {
  if (typeof name !== "string") throw new InvalidArgumentError("workspace name must be a string");
  if (name.length === 0) throw new InvalidArgumentError("workspace name is empty");
  if (!name.isWellFormed()) {
    throw new InvalidArgumentError("workspace name is not valid UTF-8 (it contains an unpaired surrogate)");
  }
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_WORKSPACE_NAME_BYTES) {
    throw new InvalidArgumentError(
      `workspace name is ${bytes} bytes long; the limit is ${MAX_WORKSPACE_NAME_BYTES} bytes`,
    );
  }
  // C0 and C1 control characters and DEL cannot be typed, logged or shown safely.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(name);
  if (control) {
    const code = control[0].codePointAt(0)?.toString(16).padStart(4, "0");
    throw new InvalidArgumentError(
      `workspace name contains the control character U+${code} at position ${control.index}`,
    );
  }
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** ghoten's hashed form: `ws-` and the first 8 bytes of SHA-256 over the UTF-8 name, in hex. */
export function hashedWorkspaceTag(name: string): string {
  return `ws-${createHash("sha256").update(name, "utf8").digest("hex").slice(0, 16)}`;
}

/** The tag component that stands for a workspace in every tag of it. */
export function workspaceTag(name: string): string {
  return isValidTag(name) && name.length <= MAX_LITERAL_NAME ? name : hashedWorkspaceTag(name);
}

/** Has the shape of a hashed tag: either a hashed name or a workspace literally named so (B3). */
export function isHashedWorkspaceTag(wsTag: string): boolean {
  return HASHED_RE.test(wsTag);
}

export interface WorkspaceTags {
  readonly name: string;
  readonly wsTag: string;
  readonly state: string;
  readonly locked: string;
  readonly unlocked: string;
  /**
   * The state tag may hold another workspace's manifest: `state-<x>-v<N>` is also version N of
   * `<x>` (B2), and `state-ws-<16 hex>` is both a hashed name's and a literal name's (B3). Writes
   * read the tag's owner before replacing it; other names' state tags are theirs alone.
   */
  readonly ambiguous: boolean;
}

export function tagsFor(name: string): WorkspaceTags {
  validateWorkspaceName(name);
  const wsTag = workspaceTag(name);
  const unlocked = `unlocked-${wsTag}`;
  return {
    name,
    wsTag,
    state: `state-${wsTag}`,
    locked: `locked-${wsTag}`,
    // Only on registries that cannot delete (GHCR); ghoten's own is too long for 120-121 characters.
    unlocked: unlocked.length <= MAX_TAG_LENGTH ? unlocked : `unlocked-${hashedWorkspaceTag(name)}`,
    ambiguous: parseVersionSuffix(wsTag) !== null || isHashedWorkspaceTag(wsTag),
  };
}

/**
 * Every tag version `n` of a workspace may be stored under, in the order they are preferred:
 * ghoten's `state-<wsTag>-v<N>`, then `stver-<wsTag>-v<N>` (written where the first is another
 * workspace's state tag, B2), then `stver-ws-<hash>-v<N>` (where a long name's versions do not fit).
 */
export function versionTagCandidates(tags: WorkspaceTags, n: number): string[] {
  return versionBases(tags)
    .flatMap((base) =>
      base === tags.wsTag ? [`state-${base}-v${n}`, `stver-${base}-v${n}`] : [`stver-${base}-v${n}`],
    )
    .filter((t) => t.length <= MAX_TAG_LENGTH);
}

/**
 * The `wsTag`s a workspace's version tags may be based on: its own, and for a name so long that
 * some versions do not fit, its hash (see versionTagCandidates).
 */
export function versionBases(tags: WorkspaceTags): string[] {
  return tags.wsTag.length > MAX_VERSIONED_WS_TAG
    ? [tags.wsTag, hashedWorkspaceTag(tags.name)]
    : [tags.wsTag];
}

/**
 * Parses Go's strconv.Atoi (optional sign, decimal digits, int64 range), which ghoten uses on the
 * suffix of a version tag; `+3` and `007` are numbers there, so they are here.
 */
export function parseGoAtoi(s: string): number | null {
  if (!/^[+-]?[0-9]+$/.test(s)) return null;
  const n = BigInt(s);
  if (n > 9223372036854775807n || n < -9223372036854775808n) return null;
  return Number(n);
}

/** Splits `<base>-v<N>` at the last `-v`, as ghoten does; N must lie in 1..2^30 and base be non-empty. */
export function parseVersionSuffix(s: string): { base: string; version: number } | null {
  const at = s.lastIndexOf("-v");
  if (at <= 0) return null;
  const version = parseGoAtoi(s.slice(at + 2));
  if (version === null || version < 1 || version > MAX_VERSION_NUMBER) return null;
  return { base: s.slice(0, at), version };
}

export type ParsedStateTag =
  | { kind: "state"; wsTag: string }
  /** A version tag; `base` is the state tag it belongs to (`state-<wsTag>`). */
  | { kind: "version"; wsTag: string; version: number; spelling: "state" | "stver" };

/**
 * Classifies one tag of the repository. `state-<x>-v<N>` is ambiguous on its own (a version of
 * `<x>`, or ghoten's state tag of a workspace literally named `<x>-v<N>`); it is reported as both
 * possibilities are: a version here, and the caller decides with the rest of the tag list.
 */
export function parseStateTag(tag: string): ParsedStateTag | null {
  if (tag.startsWith("stver-")) {
    const v = parseVersionSuffix(tag.slice("stver-".length));
    return v ? { kind: "version", wsTag: v.base, version: v.version, spelling: "stver" } : null;
  }
  if (!tag.startsWith("state-")) return null;
  const rest = tag.slice("state-".length);
  if (rest.length === 0) return null;
  const v = parseVersionSuffix(rest);
  if (v) return { kind: "version", wsTag: v.base, version: v.version, spelling: "state" };
  return { kind: "state", wsTag: rest };
}
