/**
 * What the layout needs to know about manifest content: the checks a registry makes before it
 * accepts a manifest, and the blobs a stored manifest keeps alive (for garbage collection).
 */
import { InvalidArgumentError } from "../errors.ts";
import { isDigest } from "./digest.ts";
import { isObject } from "./layout-index.ts";
import {
  MEDIA_TYPE_DOCKER_LIST,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
} from "./media-types.ts";
import type { Descriptor } from "./target.ts";

const IMAGE_MANIFEST_TYPES = new Set([MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST]);
const INDEX_TYPES = new Set([MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST]);
/** The short-lived OCI artifact manifest (image-spec 1.1 release candidates); old ORAS clients wrote it. */
const MEDIA_TYPE_OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json";

export function isIndexType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}

/** Media types whose content is itself a manifest, so the blobs it names must be followed. */
export function isManifestType(mediaType: string): boolean {
  return (
    IMAGE_MANIFEST_TYPES.has(mediaType) ||
    INDEX_TYPES.has(mediaType) ||
    mediaType === MEDIA_TYPE_OCI_ARTIFACT_MANIFEST
  );
}

export interface CheckedManifest {
  artifactType: string | undefined;
  /** Blobs that must already be stored: config and layers, or the child manifests of an index. */
  required: Descriptor[];
}

/** Validates a manifest the way a registry does on PUT; `what` names it in errors. */
export function checkManifestForPush(bytes: Uint8Array, mediaType: string, what: string): CheckedManifest {
  const invalid = (why: string) => new InvalidArgumentError(`${what}: ${why}`);
  if (!IMAGE_MANIFEST_TYPES.has(mediaType) && !INDEX_TYPES.has(mediaType)) {
    throw invalid(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw invalid("the manifest is not UTF-8 JSON");
  }
  if (!isObject(doc)) throw invalid("the manifest is not a JSON object");
  if (doc.schemaVersion !== 2) throw invalid("schemaVersion must be 2");
  if (doc.mediaType !== undefined && doc.mediaType !== mediaType) {
    throw invalid(`its mediaType field ${JSON.stringify(doc.mediaType)} differs from ${mediaType}`);
  }
  if (doc.artifactType !== undefined && typeof doc.artifactType !== "string") {
    throw invalid("artifactType must be a string");
  }
  const artifactType = typeof doc.artifactType === "string" ? doc.artifactType : undefined;
  if (doc.subject !== undefined) checkDescriptor(doc.subject, "subject", invalid);

  if (INDEX_TYPES.has(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid("manifests must be an array");
    const required = doc.manifests.map((d: unknown, i: number) =>
      checkDescriptor(d, `manifests[${i}]`, invalid),
    );
    return { artifactType, required };
  }
  const config = checkDescriptor(doc.config, "config", invalid);
  if (!Array.isArray(doc.layers)) throw invalid("layers must be an array");
  const layers = doc.layers.map((d: unknown, i: number) => checkDescriptor(d, `layers[${i}]`, invalid));
  return { artifactType, required: [config, ...layers] };
}

function checkDescriptor(value: unknown, field: string, invalid: (why: string) => Error): Descriptor {
  if (!isObject(value)) throw invalid(`${field} must be a descriptor object`);
  if (typeof value.mediaType !== "string" || value.mediaType === "")
    throw invalid(`${field} has no mediaType`);
  if (typeof value.digest !== "string" || !isDigest(value.digest)) {
    throw invalid(`${field} digest ${JSON.stringify(value.digest)} is not sha256:<64 hex>`);
  }
  if (typeof value.size !== "number" || !Number.isSafeInteger(value.size) || value.size < 0) {
    throw invalid(`${field} has no valid size`);
  }
  return { mediaType: value.mediaType, digest: value.digest, size: value.size };
}

/**
 * Every descriptor anywhere in a stored manifest (config, layers, child manifests, subject, and the
 * like in types this code does not know). Garbage collection keeps all of them: erring towards
 * keeping a blob is safe, deleting one that something needs is not.
 */
export function referencedDescriptors(doc: unknown): Array<{ mediaType: string; digest: string }> {
  const found: Array<{ mediaType: string; digest: string }> = [];
  const visit = (value: unknown, depth: number): void => {
    if (depth > 64 || value === null || typeof value !== "object") return;
    if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
      return;
    }
    const obj = value as Record<string, unknown>;
    if (typeof obj.digest === "string" && typeof obj.mediaType === "string") {
      found.push({ mediaType: obj.mediaType, digest: obj.digest });
    }
    for (const [key, child] of Object.entries(obj)) {
      if (key !== "annotations") visit(child, depth + 1);
    }
  };
  visit(doc, 0);
  return found;
}

/** Child manifests listed by an image index, for lookups of manifests the index.json names indirectly. */
export function indexChildren(doc: unknown): Descriptor[] {
  if (!isObject(doc) || !Array.isArray(doc.manifests)) return [];
  const children: Descriptor[] = [];
  for (const item of doc.manifests) {
    if (!isObject(item)) continue;
    const { mediaType, digest, size } = item;
    if (typeof mediaType === "string" && typeof digest === "string" && typeof size === "number") {
      children.push({ mediaType, digest, size });
    }
  }
  return children;
}
