/**
 * The layout's index.json: an OCI image index whose entries are the layout's manifests, a tag being
 * the `org.opencontainers.image.ref.name` annotation of an entry. Values are immutable: every change
 * returns a new LayoutIndex, so readers keep a consistent snapshot while a write is under way.
 *
 * Entries and top-level fields this code does not know (written by other tools) are kept as they are.
 */
import { DataLossError } from "../errors.ts";
import { ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_INDEX } from "./media-types.ts";
import type { Descriptor } from "./target.ts";

/** One `manifests[]` entry, with any extra fields it was read with. */
export interface IndexEntry {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly [field: string]: unknown;
}

export interface LayoutIndex {
  readonly manifests: readonly IndexEntry[];
  /** Top-level fields other than schemaVersion, mediaType and manifests (e.g. annotations). */
  readonly extra: Readonly<Record<string, unknown>>;
}

// The digest grammar of the image spec, any algorithm: entries written by other tools may use one
// this store cannot read, and they are kept rather than rejected.
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export const EMPTY_INDEX: LayoutIndex = { manifests: [], extra: {} };

export function parseIndex(bytes: Uint8Array, file: string): LayoutIndex {
  const fail = (why: string) => new DataLossError(`${file} is not a valid OCI image index: ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw fail(`not UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(doc)) throw fail("not a JSON object");
  if (doc.schemaVersion !== 2) throw fail(`schemaVersion is ${JSON.stringify(doc.schemaVersion)}, not 2`);
  if (doc.mediaType !== undefined && doc.mediaType !== MEDIA_TYPE_OCI_INDEX) {
    throw fail(`mediaType is ${JSON.stringify(doc.mediaType)}, not ${MEDIA_TYPE_OCI_INDEX}`);
  }
  if (!Array.isArray(doc.manifests)) throw fail("manifests is not an array");
  const manifests = doc.manifests.map((entry: unknown, i: number) => {
    const why = entryProblem(entry);
    if (why !== undefined) throw fail(`manifests[${i}] ${why}`);
    return entry as IndexEntry;
  });
  const { schemaVersion: _v, mediaType: _m, manifests: _list, ...extra } = doc;
  return { manifests, extra };
}

function entryProblem(entry: unknown): string | undefined {
  if (!isObject(entry)) return "is not an object";
  if (typeof entry.mediaType !== "string" || entry.mediaType === "") return "has no mediaType";
  if (typeof entry.digest !== "string" || !ANY_DIGEST_RE.test(entry.digest)) return "has no valid digest";
  if (typeof entry.size !== "number" || !Number.isSafeInteger(entry.size) || entry.size < 0) {
    return "has no valid size";
  }
  if (entry.artifactType !== undefined && typeof entry.artifactType !== "string") {
    return "has an artifactType that is not a string";
  }
  if (entry.annotations !== undefined) {
    if (!isObject(entry.annotations)) return "has annotations that are not an object";
    for (const value of Object.values(entry.annotations)) {
      if (typeof value !== "string") return "has an annotation value that is not a string";
    }
  }
  return undefined;
}

export function serializeIndex(index: LayoutIndex): Uint8Array {
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_INDEX,
    ...index.extra,
    manifests: index.manifests,
  };
  return new TextEncoder().encode(JSON.stringify(doc));
}

export function refName(entry: IndexEntry): string | undefined {
  return entry.annotations?.[ANNOTATION_REF_NAME];
}

export function findByTag(index: LayoutIndex, tag: string): IndexEntry | undefined {
  return index.manifests.find((entry) => refName(entry) === tag);
}

export function findByDigest(index: LayoutIndex, digest: string): IndexEntry | undefined {
  return index.manifests.find((entry) => entry.digest === digest);
}

/** Ref names that occur on more than one entry (only other tools write those). */
export function duplicateRefNames(index: LayoutIndex): string[] {
  const seen = new Set<string>();
  const dups = new Set<string>();
  for (const entry of index.manifests) {
    const name = refName(entry);
    if (name === undefined) continue;
    if (seen.has(name)) dups.add(name);
    seen.add(name);
  }
  return [...dups];
}

/** The descriptor a lookup returns: the entry without its layout-only annotations. */
export function entryDescriptor(entry: IndexEntry): Descriptor {
  const desc: Descriptor = { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
  if (entry.artifactType !== undefined) desc.artifactType = entry.artifactType;
  return desc;
}

function newEntry(desc: Descriptor, tag: string | undefined): IndexEntry {
  const entry: { -readonly [K in keyof IndexEntry]: IndexEntry[K] } = {
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
  };
  if (desc.artifactType !== undefined) entry.artifactType = desc.artifactType;
  if (tag !== undefined) entry.annotations = { [ANNOTATION_REF_NAME]: tag };
  return entry;
}

function sameTarget(entry: IndexEntry, desc: Descriptor): boolean {
  return entry.digest === desc.digest && entry.mediaType === desc.mediaType && entry.size === desc.size;
}

/**
 * Points `tag` at `desc`: the tag's entry is replaced where it stands (other tags keep their
 * positions), and an untagged entry for the same manifest is dropped, the tag now keeping it.
 * Returns `index` itself when nothing changes.
 */
export function withTag(index: LayoutIndex, tag: string, desc: Descriptor): LayoutIndex {
  const tagged = index.manifests.filter((entry) => refName(entry) === tag);
  if (tagged.length === 1 && tagged[0] !== undefined && sameTarget(tagged[0], desc)) return index;
  const replacement = newEntry(desc, tag);
  const manifests: IndexEntry[] = [];
  let placed = false;
  for (const entry of index.manifests) {
    const name = refName(entry);
    if (name === tag) {
      if (!placed) manifests.push(replacement);
      placed = true;
    } else if (name !== undefined || entry.digest !== desc.digest) {
      manifests.push(entry);
    }
  }
  if (!placed) manifests.push(replacement);
  return { manifests, extra: index.extra };
}

/** Records a manifest pushed by digest; no change when the index already lists that digest. */
export function withUntagged(index: LayoutIndex, desc: Descriptor): LayoutIndex {
  if (findByDigest(index, desc.digest) !== undefined) return index;
  return { manifests: [...index.manifests, newEntry(desc, undefined)], extra: index.extra };
}

export function withoutDigest(index: LayoutIndex, digest: string): LayoutIndex {
  return { manifests: index.manifests.filter((entry) => entry.digest !== digest), extra: index.extra };
}

export function withoutTag(index: LayoutIndex, tag: string): LayoutIndex {
  return { manifests: index.manifests.filter((entry) => refName(entry) !== tag), extra: index.extra };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
