/**
 * A stored state read as what it is: Terraform/OpenTofu state JSON (format 4, or the pre-0.12
 * format 3), an OpenTofu client-side encrypted envelope, or an opaque payload. Both the summary
 * and the diff walk a state through this one reading, so they agree on addresses and outputs.
 */

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export type StateDocument =
  | { format: "terraform_json"; doc: Json }
  /** OpenTofu state encryption: `serial`/`lineage` may sit beside the ciphertext. */
  | { format: "encrypted"; doc: Json; detail: string }
  | { format: "opaque"; detail: string };

/** Parses `data` once. Never throws: anything unreadable is opaque, with the reason. */
export function readStateDocument(data: Uint8Array): StateDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    // A nesting too deep for the parser is a RangeError: still "not a state we can read".
    const why = err instanceof RangeError ? "it is nested too deeply to read" : "it is not JSON";
    return { format: "opaque", detail: why };
  }
  if (!isObject(doc)) return { format: "opaque", detail: "it is JSON but not an object" };
  if ("encrypted_data" in doc || "encryption_version" in doc) {
    return { format: "encrypted", doc, detail: "it is encrypted (OpenTofu state encryption)" };
  }
  const looksLikeState =
    Array.isArray(doc.resources) ||
    Array.isArray(doc.modules) ||
    (typeof doc.version === "number" && ("lineage" in doc || "serial" in doc));
  if (!looksLikeState) {
    return {
      format: "opaque",
      detail: "it is JSON but not a Terraform state (no `version` and `resources`)",
    };
  }
  return { format: "terraform_json", doc };
}

export interface Header {
  serial: number;
  lineage: string;
  terraformVersion: string;
  stateVersion: number;
}

/** The top-level fields every format may carry (an encrypted envelope carries serial and lineage). */
export function readHeader(doc: Json): Header {
  return {
    serial: safeInteger(doc.serial),
    lineage: typeof doc.lineage === "string" ? doc.lineage : "",
    terraformVersion: typeof doc.terraform_version === "string" ? doc.terraform_version : "",
    stateVersion: safeInteger(doc.version),
  };
}

function safeInteger(v: unknown): number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

/** One `resource`/`data` block with its instances, in either format. */
export interface ResourceBlock {
  module: string;
  mode: "managed" | "data";
  type: string;
  name: string;
  provider: string;
  /** Address without instance key (`module.a.aws_instance.web`, `data.x.y`). */
  address: string;
  /** Each instance's key suffix (``, `[0]`, `["a"]`) and its object. */
  instances: { key: string; value: unknown }[];
}

export interface OutputEntry {
  name: string;
  sensitive: boolean;
  type: unknown;
  value: unknown;
}

const str = (v: unknown) => (typeof v === "string" ? v : "");

/** Visits the resource blocks in state order. */
export function forEachResource(doc: Json, visit: (block: ResourceBlock) => void): void {
  if (Array.isArray(doc.resources)) {
    for (const r of doc.resources) {
      if (!isObject(r)) continue;
      const mode = r.mode === "data" ? "data" : "managed";
      const module = str(r.module);
      const type = str(r.type);
      const name = str(r.name);
      const local = `${mode === "data" ? "data." : ""}${type}.${name}`;
      const instances = Array.isArray(r.instances)
        ? r.instances.map((value) => ({
            key: instanceKey(isObject(value) ? value.index_key : undefined),
            value,
          }))
        : [];
      visit({
        module,
        mode,
        type,
        name,
        provider: str(r.provider),
        address: module === "" ? local : `${module}.${local}`,
        instances,
      });
    }
    return;
  }
  if (Array.isArray(doc.modules)) forEachV3Resource(doc.modules, visit);
}

/** Format 3 keys resources `type.name` or `type.name.N` (count), data sources `data.type.name`. */
function forEachV3Resource(modules: unknown[], visit: (block: ResourceBlock) => void): void {
  for (const m of modules) {
    if (!isObject(m) || !isObject(m.resources)) continue;
    const module = Array.isArray(m.path)
      ? m.path
          .slice(1)
          .map((p) => `module.${String(p)}`)
          .join(".")
      : "";
    const blocks = new Map<string, ResourceBlock>();
    for (const [key, value] of Object.entries(m.resources)) {
      const data = key.startsWith("data.");
      const parts = (data ? key.slice(5) : key).split(".");
      const count = parts.length > 2 && /^\d+$/.test(parts.at(-1) ?? "") ? parts.pop() : undefined;
      const type = parts[0] ?? "";
      const name = parts.slice(1).join(".");
      const local = `${data ? "data." : ""}${type}.${name}`;
      const address = module === "" ? local : `${module}.${local}`;
      let block = blocks.get(address);
      if (!block) {
        block = {
          module,
          mode: data ? "data" : "managed",
          type,
          name,
          provider: isObject(value) ? str(value.provider) : "",
          address,
          instances: [],
        };
        blocks.set(address, block);
      }
      block.instances.push({ key: count === undefined ? "" : `[${count}]`, value });
    }
    for (const block of blocks.values()) visit(block);
  }
}

function instanceKey(key: unknown): string {
  if (typeof key === "number") return `[${key}]`;
  if (typeof key === "string") return `[${JSON.stringify(key)}]`;
  return "";
}

/** The root module's outputs, sorted by name. */
export function readOutputs(doc: Json): OutputEntry[] {
  let outputs: unknown = doc.outputs;
  if (outputs === undefined && Array.isArray(doc.modules)) {
    const root = doc.modules.find((m) => isObject(m) && Array.isArray(m.path) && m.path.length === 1);
    outputs = isObject(root) ? root.outputs : undefined;
  }
  if (!isObject(outputs)) return [];
  return Object.entries(outputs)
    .map(([name, o]) => ({
      name,
      // An entry that is not an object is masked: its value's nature is unknown.
      sensitive: isObject(o) ? o.sensitive === true : true,
      type: isObject(o) ? o.type : undefined,
      value: isObject(o) ? o.value : undefined,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
