import { DataLossError } from "../errors.ts";
import { EMPTY_DIGEST, MEDIA_TYPE_EMPTY, MEDIA_TYPE_OCI_MANIFEST } from "../oci/media-types.ts";
import type { Descriptor } from "../oci/target.ts";
import { rfc3339Nano, rfc3339Seconds } from "./go-time.ts";
import { emptyLockInfo, type LockInfo, lockInfoFromGoJson, lockInfoToGoJson } from "./lock-info.ts";
import {
  ANNOTATION_CREATED,
  ANNOTATION_LOCK_GENERATION,
  ANNOTATION_LOCK_ID,
  ANNOTATION_LOCK_INFO,
  ANNOTATION_UPDATED_AT,
  ANNOTATION_VERSION,
  ANNOTATION_WORKSPACE,
  ARTIFACT_TYPE_LOCK,
  ARTIFACT_TYPE_STATE,
  MEDIA_TYPE_STATE,
  MEDIA_TYPE_STATE_GZIP,
} from "./wire-format.ts";

/**
 * Packs and parses the manifests ghoten writes (docs/oras-wire-format.md §2), byte-for-byte in the
 * shape oras-go's PackManifest (v1.1) produces: an image manifest with artifactType, the empty
 * config with inline data, Go's field order and sorted annotation keys.
 */

/** The OCI empty descriptor as oras-go writes it (with `data` = base64 of `{}`). */
export const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: MEDIA_TYPE_EMPTY,
  digest: EMPTY_DIGEST,
  size: 2,
  data: "e30=",
};

function descriptorJson(d: Descriptor): Record<string, unknown> {
  const out: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.annotations && Object.keys(d.annotations).length > 0) out.annotations = sortKeys(d.annotations);
  if (d.data !== undefined) out.data = d.data;
  if (d.artifactType !== undefined) out.artifactType = d.artifactType;
  return out;
}

function sortKeys(obj: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function packManifest(
  artifactType: string,
  layers: Descriptor[],
  annotations: Record<string, string>,
  nowMs: number,
): Uint8Array {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    artifactType,
    config: descriptorJson(EMPTY_DESCRIPTOR),
    layers: layers.map(descriptorJson),
    annotations: sortKeys({ ...annotations, [ANNOTATION_CREATED]: rfc3339Seconds(nowMs) }),
  };
  return new TextEncoder().encode(JSON.stringify(manifest));
}

export interface StateManifestInput {
  workspace: string;
  /** The state blob, or null for an empty workspace (no layers: ghoten reads it as "no state"). */
  layer: Descriptor | null;
  /** Set only when versioning is on (N > 0). */
  version?: number | undefined;
  nowMs: number;
}

export function packStateManifest(input: StateManifestInput): Uint8Array {
  const annotations: Record<string, string> = {
    [ANNOTATION_WORKSPACE]: input.workspace,
    [ANNOTATION_UPDATED_AT]: rfc3339Nano(input.nowMs),
  };
  if (input.version !== undefined && input.version > 0)
    annotations[ANNOTATION_VERSION] = String(input.version);
  const layers = input.layer
    ? [{ mediaType: input.layer.mediaType, digest: input.layer.digest, size: input.layer.size }]
    : [];
  return packManifest(ARTIFACT_TYPE_STATE, layers, annotations, input.nowMs);
}

export interface LockGeneration {
  generation: bigint;
  /** Unix nanoseconds; 0n when the lock has no lease. */
  leaseExpiryNs: bigint;
  holderId: string;
}

/** Compact JSON with int64 values written exactly; `lease_expiry` and `holder_id` left out when zero. */
export function generationToJson(g: LockGeneration): string {
  let s = `{"generation":${g.generation.toString()}`;
  if (g.leaseExpiryNs !== 0n) s += `,"lease_expiry":${g.leaseExpiryNs.toString()}`;
  if (g.holderId !== "") s += `,"holder_id":${JSON.stringify(g.holderId)}`;
  return `${s}}`;
}

/** Parses the generation annotation; null when it is absent or does not parse (ghoten ignores it then). */
export function generationFromJson(text: string | undefined): LockGeneration | null {
  if (text === undefined || text === "") return null;
  let raw: unknown;
  try {
    // The reviver's source text keeps int64 values exact (Unix nanoseconds pass 2^53).
    raw = JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && context?.source !== undefined && /^-?\d+$/.test(context.source)
        ? BigInt(context.source)
        : value,
    );
  } catch {
    return null;
  }
  if (typeof raw !== "object" || raw === null) return null;
  const obj = raw as Record<string, unknown>;
  const int = (v: unknown): bigint | null => (typeof v === "bigint" ? v : v === undefined ? 0n : null);
  const generation = int(obj.generation);
  const leaseExpiryNs = int(obj.lease_expiry);
  const holderId = obj.holder_id === undefined ? "" : obj.holder_id;
  if (generation === null || leaseExpiryNs === null || typeof holderId !== "string") return null;
  return { generation, leaseExpiryNs, holderId };
}

export interface LockManifestInput {
  workspace: string;
  info: LockInfo;
  generation: LockGeneration;
  nowMs: number;
}

export function packLockManifest(input: LockManifestInput): Uint8Array {
  return packManifest(
    ARTIFACT_TYPE_LOCK,
    [EMPTY_DESCRIPTOR],
    {
      [ANNOTATION_WORKSPACE]: input.workspace,
      [ANNOTATION_LOCK_ID]: input.info.id,
      [ANNOTATION_LOCK_INFO]: lockInfoToGoJson(input.info),
      [ANNOTATION_LOCK_GENERATION]: generationToJson(input.generation),
    },
    input.nowMs,
  );
}

/** The "unlocked" sentinel (§2.3): a lock manifest with empty id and info, generation 0. */
export function packUnlockedSentinel(workspace: string, nowMs: number): Uint8Array {
  return packManifest(
    ARTIFACT_TYPE_LOCK,
    [EMPTY_DESCRIPTOR],
    {
      [ANNOTATION_WORKSPACE]: workspace,
      [ANNOTATION_LOCK_ID]: "",
      [ANNOTATION_LOCK_INFO]: "",
      [ANNOTATION_LOCK_GENERATION]: '{"generation":0}',
    },
    nowMs,
  );
}

interface RawManifest {
  schemaVersion?: unknown;
  mediaType?: unknown;
  artifactType?: unknown;
  manifests?: unknown;
  config?: unknown;
  layers?: unknown;
  annotations?: unknown;
}

function decodeManifest(bytes: Uint8Array, where: string): RawManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new DataLossError(`${where}: manifest is not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new DataLossError(`${where}: manifest is not a JSON object`);
  }
  const m = raw as RawManifest;
  if (Array.isArray(m.manifests) || (typeof m.mediaType === "string" && /index|list/.test(m.mediaType))) {
    throw new DataLossError(`${where}: holds an image index, not a Terraform manifest`);
  }
  if (m.schemaVersion !== 2) throw new DataLossError(`${where}: manifest schemaVersion is not 2`);
  return m;
}

function annotationsOf(m: RawManifest, where: string): Record<string, string> {
  if (m.annotations === undefined || m.annotations === null) return {};
  if (typeof m.annotations !== "object" || Array.isArray(m.annotations)) {
    throw new DataLossError(`${where}: manifest annotations are not an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.annotations as Record<string, unknown>)) {
    if (typeof v !== "string")
      throw new DataLossError(`${where}: annotation ${JSON.stringify(k)} is not a string`);
    out[k] = v;
  }
  return out;
}

function layerDescriptor(raw: unknown, where: string): Descriptor {
  if (typeof raw !== "object" || raw === null)
    throw new DataLossError(`${where}: layer descriptor is not an object`);
  const d = raw as Record<string, unknown>;
  if (typeof d.mediaType !== "string" || typeof d.digest !== "string" || typeof d.size !== "number") {
    throw new DataLossError(`${where}: layer descriptor lacks mediaType, digest or size`);
  }
  if (!/^sha256:[a-f0-9]{64}$/.test(d.digest)) {
    throw new DataLossError(`${where}: layer digest ${JSON.stringify(d.digest)} is not a sha256 digest`);
  }
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new DataLossError(`${where}: layer size is invalid`);
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

export interface ParsedStateManifest {
  workspace: string | undefined;
  /** null: the manifest has no layers, which ghoten reads as "no state". */
  layer: Descriptor | null;
  gzip: boolean;
  version: number | undefined;
  updatedAt: string | undefined;
  annotations: Record<string, string>;
}

/**
 * Reads a state manifest and refuses anything ghoten would not have written there (B8): an index,
 * another artifactType, more than one layer, or a layer type we do not know. `where` names the tag.
 */
export function parseStateManifest(bytes: Uint8Array, where: string): ParsedStateManifest {
  const m = decodeManifest(bytes, where);
  if (m.artifactType !== undefined && m.artifactType !== "" && m.artifactType !== ARTIFACT_TYPE_STATE) {
    throw new DataLossError(
      `${where}: unexpected state manifest artifactType ${JSON.stringify(m.artifactType)} (want ${ARTIFACT_TYPE_STATE})`,
    );
  }
  const annotations = annotationsOf(m, where);
  const layers = m.layers === undefined || m.layers === null ? [] : m.layers;
  if (!Array.isArray(layers)) throw new DataLossError(`${where}: manifest layers are not a list`);
  if (layers.length > 1)
    throw new DataLossError(`${where}: state manifest has ${layers.length} layers, expected one`);
  let layer: Descriptor | null = null;
  let gzip = false;
  if (layers.length === 1) {
    layer = layerDescriptor(layers[0], where);
    if (layer.mediaType === MEDIA_TYPE_STATE_GZIP) gzip = true;
    else if (layer.mediaType !== MEDIA_TYPE_STATE) {
      throw new DataLossError(
        `${where}: unsupported state layer media type ${JSON.stringify(layer.mediaType)}`,
      );
    }
  }
  const versionText = annotations[ANNOTATION_VERSION];
  const version = versionText !== undefined && /^[0-9]+$/.test(versionText) ? Number(versionText) : undefined;
  return {
    workspace: annotations[ANNOTATION_WORKSPACE],
    layer,
    gzip,
    version: version !== undefined && version > 0 ? version : undefined,
    updatedAt: annotations[ANNOTATION_UPDATED_AT],
    annotations,
  };
}

export type ParsedLock =
  | { kind: "free"; generation: LockGeneration | null }
  | { kind: "held"; info: LockInfo; generation: LockGeneration | null }
  /** Unparseable lock content; reported as held by an unknown holder (B6), never retried in a loop. */
  | { kind: "corrupt"; reason: string };

/** Reads a lock manifest with ghoten's rules (§2.4), except that garbage is "corrupt", not an endless retry. */
export function parseLockManifest(bytes: Uint8Array, where: string, stateTag: string): ParsedLock {
  let m: RawManifest;
  let annotations: Record<string, string>;
  try {
    m = decodeManifest(bytes, where);
    annotations = annotationsOf(m, where);
  } catch (err) {
    return { kind: "corrupt", reason: (err as Error).message };
  }
  if (m.artifactType !== undefined && m.artifactType !== "" && m.artifactType !== ARTIFACT_TYPE_LOCK) {
    return {
      kind: "corrupt",
      reason: `${where}: unexpected lock manifest artifactType ${JSON.stringify(m.artifactType)}`,
    };
  }
  const generation = generationFromJson(annotations[ANNOTATION_LOCK_GENERATION]);
  const infoText = annotations[ANNOTATION_LOCK_INFO] ?? "";
  const idText = annotations[ANNOTATION_LOCK_ID] ?? "";
  if (infoText === "" && idText === "") return { kind: "free", generation };
  let info: LockInfo;
  if (infoText !== "") {
    try {
      info = lockInfoFromGoJson(infoText);
    } catch (err) {
      return { kind: "corrupt", reason: `${where}: lock info does not parse (${(err as Error).message})` };
    }
    if (info.id === "") info.id = idText;
  } else {
    info = { ...emptyLockInfo(), id: idText };
  }
  if (info.path === "") info.path = stateTag;
  if (info.id === "") return { kind: "free", generation };
  return { kind: "held", info, generation };
}

/**
 * The workspace a manifest at a derived tag belongs to, from its annotation; undefined when it has
 * none (or does not parse). ghoten stores workspace `<x>-v<N>` under the tag that is also version N
 * of `<x>` (B2), so deletes check this before removing a tag that merely looks like ours.
 */
export function annotatedWorkspace(bytes: Uint8Array): string | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(bytes)) as { annotations?: Record<string, unknown> };
    const ws = m.annotations?.[ANNOTATION_WORKSPACE];
    return typeof ws === "string" ? ws : undefined;
  } catch {
    return undefined;
  }
}
