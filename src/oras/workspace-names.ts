import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../errors.ts";
import { MAX_VERSION_NUMBER } from "./wire-format.ts";

/**
 * Workspace names and the tags derived from them (docs/oras-wire-format.md §1, decisions B1–B4).
 *
 * ghoten uses the name itself as `wsTag` when it is a valid OCI tag and `ws-<16 hex>` otherwise.
 * We keep that, and also hash every name that would be ambiguous or too long as a tag:
 * - it parses as a version tag (`<x>-v<N>`), which would collide with the history of `<x>` (B2);
 * - it has the hashed shape `ws-<16 hex>` itself, which aliases another name's hash (B3);
 * - a derived tag would pass the registries' 128-character limit (B4).
 */

/** OCI tag grammar as oras-go validates it; `\w` is ASCII only. */
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HASHED_RE = /^ws-[0-9a-f]{16}$/;
const MAX_TAG_LENGTH = 128;
/** `state-` + name + `-v` + up to 10 digits (2^30) is the longest tag derived from a name. */
const LONGEST_DERIVED_OVERHEAD = "state-".length + "-v".length + String(MAX_VERSION_NUMBER).length;
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
  const needsHash =
    !isValidTag(name) ||
    parseVersionSuffix(name) !== null ||
    HASHED_RE.test(name) ||
    name.length + LONGEST_DERIVED_OVERHEAD > MAX_TAG_LENGTH;
  return needsHash ? hashedWorkspaceTag(name) : name;
}

export function isHashedWorkspaceTag(wsTag: string): boolean {
  return HASHED_RE.test(wsTag);
}

export interface WorkspaceTags {
  readonly name: string;
  readonly wsTag: string;
  readonly state: string;
  readonly locked: string;
  readonly unlocked: string;
}

export function tagsFor(name: string): WorkspaceTags {
  validateWorkspaceName(name);
  const wsTag = workspaceTag(name);
  return {
    name,
    wsTag,
    state: `state-${wsTag}`,
    locked: `locked-${wsTag}`,
    unlocked: `unlocked-${wsTag}`,
  };
}

/** The version tag we write (ghoten's spelling). */
export function versionTag(wsTag: string, n: number): string {
  return `state-${wsTag}-v${n}`;
}

/** Both spellings a version may be stored under; `stver-` is a later ghoten variant we read. */
export function versionTagCandidates(wsTag: string, n: number): string[] {
  return [`state-${wsTag}-v${n}`, `stver-${wsTag}-v${n}`];
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
