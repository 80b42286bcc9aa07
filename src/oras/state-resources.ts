/**
 * The resources a state still manages, for a delete without force. Terraform's `workspace delete`
 * refuses a state with managed resource instances (data sources do not count); this counts the
 * managed resources a state lists, erring towards "not empty": an entry without instances counts.
 */

export type ManagedResources =
  /** The managed resources' addresses, in state order. */
  | { kind: "counted"; addresses: string[] }
  /** The state cannot be read for its resources (encrypted, not JSON, an unknown shape). */
  | { kind: "opaque"; reason: string };

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export function managedResources(data: Uint8Array): ManagedResources {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch {
    return { kind: "opaque", reason: "it is not JSON" };
  }
  if (!isObject(doc)) return { kind: "opaque", reason: "it is not a JSON object" };
  // OpenTofu's client-side state encryption stores an envelope with the real state inside.
  if ("encrypted_data" in doc || "encryption_version" in doc) {
    return { kind: "opaque", reason: "it is encrypted (OpenTofu state encryption)" };
  }
  if (Array.isArray(doc.resources)) return formatV4(doc.resources);
  if (Array.isArray(doc.modules)) return formatV3(doc.modules);
  if (doc.resources === undefined) return { kind: "counted", addresses: [] };
  return { kind: "opaque", reason: "its `resources` is not a list" };
}

/** Format version 4 (Terraform ≥ 0.12, OpenTofu): `resources[]` with `mode`, `type`, `name`, `module`. */
function formatV4(resources: unknown[]): ManagedResources {
  const addresses: string[] = [];
  for (const r of resources) {
    if (!isObject(r)) return { kind: "opaque", reason: "a `resources` entry is not an object" };
    if (r.mode === "data") continue;
    const local = [r.type, r.name].filter((p) => typeof p === "string" && p !== "").join(".") || "(unnamed)";
    addresses.push(typeof r.module === "string" && r.module !== "" ? `${r.module}.${local}` : local);
  }
  return { kind: "counted", addresses };
}

/** Format version 3 (Terraform < 0.12): `modules[].resources` keyed by address, data sources `data.*`. */
function formatV3(modules: unknown[]): ManagedResources {
  const addresses: string[] = [];
  for (const m of modules) {
    if (!isObject(m)) return { kind: "opaque", reason: "a `modules` entry is not an object" };
    if (!isObject(m.resources)) continue;
    const prefix = Array.isArray(m.path)
      ? m.path
          .slice(1)
          .map((p) => `module.${String(p)}.`)
          .join("")
      : "";
    for (const address of Object.keys(m.resources)) {
      if (!address.startsWith("data.")) addresses.push(prefix + address);
    }
  }
  return { kind: "counted", addresses };
}

/** "4 managed resources (aws_instance.web, aws_s3_bucket.logs, null_resource.x and 1 more)". */
export function describeManaged(addresses: readonly string[], shown = 3): string {
  const noun = addresses.length === 1 ? "managed resource" : "managed resources";
  const rest = addresses.length - shown;
  const named = addresses.slice(0, shown).join(", ") + (rest > 0 ? ` and ${rest} more` : "");
  return `${addresses.length} ${noun} (${named})`;
}
