/**
 * What a state says about itself, read once per state digest (summary-cache.ts): serial, lineage,
 * tool version, resource counts, the resources and the outputs, sensitive values masked here so
 * nothing downstream can leak them. Pure: bytes in, summary out.
 */
import {
  forEachResource,
  type Json,
  type OutputEntry,
  readHeader,
  readOutputs,
  readStateDocument,
} from "./state-document.ts";

export type StateFormat = "terraform_json" | "encrypted" | "opaque";

/** An output as any caller may see it: a sensitive one has no value. */
export interface MaskedOutput {
  name: string;
  sensitive: boolean;
  /** The type as JSON; "" when the state records none. */
  typeJson: string;
  /** The value as JSON; "" when sensitive. */
  valueJson: string;
}

export interface ResourceEntry {
  address: string;
  module: string;
  mode: "managed" | "data";
  type: string;
  name: string;
  provider: string;
  instanceCount: number;
}

export interface StateSummary {
  format: StateFormat;
  /** Why the state is not readable as Terraform JSON; "" when it is. */
  detail: string;
  serial: number;
  lineage: string;
  terraformVersion: string;
  stateVersion: number;
  /** Managed resource instances. */
  resourceCount: number;
  dataSourceCount: number;
  /** Managed instances per type, sorted by type. */
  byType: [string, number][];
  /** Managed instances per module address ("" = root), sorted. */
  byModule: [string, number][];
  outputs: MaskedOutput[];
  /** At most MAX_LISTED_RESOURCES, in state order. */
  resources: ResourceEntry[];
  resourcesTruncated: boolean;
}

/** More resource blocks than this are counted but not listed (the summary is cached in memory). */
export const MAX_LISTED_RESOURCES = 10_000;

export function maskOutput(o: OutputEntry): MaskedOutput {
  return {
    name: o.name,
    sensitive: o.sensitive,
    typeJson: o.type === undefined ? "" : JSON.stringify(o.type),
    valueJson: o.sensitive || o.value === undefined ? "" : JSON.stringify(o.value),
  };
}

const EMPTY = {
  detail: "",
  serial: 0,
  lineage: "",
  terraformVersion: "",
  stateVersion: 0,
  resourceCount: 0,
  dataSourceCount: 0,
  byType: [],
  byModule: [],
  outputs: [],
  resources: [],
  resourcesTruncated: false,
} satisfies Omit<StateSummary, "format">;

export function summarizeState(data: Uint8Array): StateSummary {
  const read = readStateDocument(data);
  if (read.format === "opaque") return { ...EMPTY, format: "opaque", detail: read.detail };
  if (read.format === "encrypted") {
    const { serial, lineage } = readHeader(read.doc);
    return { ...EMPTY, format: "encrypted", detail: read.detail, serial, lineage };
  }
  try {
    return summarizeDocument(read.doc);
  } catch (err) {
    // Only a structure too deep to serialize gets here (an output value nested thousands deep).
    if (err instanceof RangeError)
      return { ...EMPTY, format: "opaque", detail: "it is nested too deeply to read" };
    throw err;
  }
}

function summarizeDocument(doc: Json): StateSummary {
  const byType = new Map<string, number>();
  const byModule = new Map<string, number>();
  const resources: ResourceEntry[] = [];
  let resourceCount = 0;
  let dataSourceCount = 0;
  let blocks = 0;
  forEachResource(doc, (b) => {
    blocks++;
    const n = b.instances.length;
    if (resources.length < MAX_LISTED_RESOURCES) {
      const { address, module, mode, type, name, provider } = b;
      resources.push({ address, module, mode, type, name, provider, instanceCount: n });
    }
    if (b.mode === "data") {
      dataSourceCount += n;
      return;
    }
    resourceCount += n;
    byType.set(b.type, (byType.get(b.type) ?? 0) + n);
    byModule.set(b.module, (byModule.get(b.module) ?? 0) + n);
  });
  return {
    ...readHeader(doc),
    format: "terraform_json",
    detail: "",
    resourceCount,
    dataSourceCount,
    byType: sortedEntries(byType),
    byModule: sortedEntries(byModule),
    outputs: readOutputs(doc).map(maskOutput),
    resources,
    resourcesTruncated: blocks > resources.length,
  };
}

function sortedEntries(m: Map<string, number>): [string, number][] {
  return [...m.entries()].filter(([, n]) => n > 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A rough size in memory, for the cache's byte budget. */
export function summaryWeight(s: StateSummary): number {
  let bytes = 512 + s.lineage.length + s.detail.length;
  for (const o of s.outputs) bytes += 64 + o.name.length + o.typeJson.length + o.valueJson.length;
  for (const r of s.resources) bytes += 96 + 2 * r.address.length + r.provider.length;
  for (const [k] of s.byType) bytes += 32 + k.length;
  for (const [k] of s.byModule) bytes += 32 + k.length;
  return 2 * bytes;
}
