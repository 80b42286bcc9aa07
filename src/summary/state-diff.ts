/**
 * What changed between two states: resource instances added, removed and changed (by address,
 * with the paths that differ inside a changed instance, never values: attributes may be secret),
 * outputs added, removed and changed (masked as in a summary). Pure: bytes in, diff out.
 *
 * Memory stays near one parsed state however large the states are: each side is reduced to a
 * hash per instance address and its parsed tree dropped before the other is parsed; only the
 * changed instances (at most MAX_DETAILED_CHANGES) are picked out again, from the side still
 * parsed and from one more parse of the other. Small pairs keep both trees and parse once.
 */
import { createHash } from "node:crypto";
import {
  forEachResource,
  type Header,
  isObject,
  type Json,
  readHeader,
  readOutputs,
  readStateDocument,
} from "./state-document.ts";
import { type MaskedOutput, maskOutput } from "./state-summary.ts";

export type ChangeKind = "added" | "removed" | "changed";

export interface ResourceChange {
  address: string;
  kind: ChangeKind;
  /** For `changed`: sorted paths inside the instance (`attributes.tags.Name`). */
  changedPaths: string[];
  /** More paths differ than listed, or paths were not computed (past MAX_DETAILED_CHANGES). */
  pathsTruncated: boolean;
}

export interface OutputChange {
  name: string;
  kind: ChangeKind;
  from: MaskedOutput | undefined;
  to: MaskedOutput | undefined;
}

export type StateDiff =
  | {
      comparable: true;
      from: Header;
      to: Header;
      resources: ResourceChange[];
      outputs: OutputChange[];
      /** Some changed instances carry no paths (more than MAX_DETAILED_CHANGES changed). */
      pathsTruncated: boolean;
    }
  /** One side is not Terraform JSON: its contents cannot be compared. */
  | { comparable: false; side: "from" | "to"; detail: string };

/** Changed instances whose paths are computed; later ones are listed by address only. */
export const MAX_DETAILED_CHANGES = 1000;
/** Paths listed per changed instance. */
export const MAX_PATHS_PER_RESOURCE = 64;
/** Below this combined size both parsed states are kept instead of parsing one of them twice. */
export const KEEP_BOTH_PARSED_BYTES = 32 * 1024 * 1024;
/** Past this depth a differing subtree is reported as one path. */
const MAX_PATH_DEPTH = 32;

interface Side {
  header: Header;
  /** Instance address → hash of its JSON. */
  index: Map<string, string>;
  /** Each output masked, with a hash of its real value: a changed secret shows as changed. */
  outputs: Map<string, { shown: MaskedOutput; hash: string }>;
}

export function diffStates(
  fromData: Uint8Array,
  toData: Uint8Array,
  keepBothParsedBytes = KEEP_BOTH_PARSED_BYTES,
): StateDiff {
  const keepBoth = fromData.byteLength + toData.byteLength <= keepBothParsedBytes;
  const fromRead = parse(fromData);
  if (!fromRead.ok) return { comparable: false, side: "from", detail: fromRead.detail };
  const from = reduce(fromRead.doc);
  if (from === undefined) return { comparable: false, side: "from", detail: TOO_DEEP };
  let fromDoc: Json | undefined = keepBoth ? fromRead.doc : undefined;
  if (!keepBoth) fromRead.doc = {}; // dropped before `to` is parsed
  const toRead = parse(toData);
  if (!toRead.ok) return { comparable: false, side: "to", detail: toRead.detail };
  const to = reduce(toRead.doc);
  if (to === undefined) return { comparable: false, side: "to", detail: TOO_DEEP };

  const resources: ResourceChange[] = [];
  for (const [address, hash] of to.index) {
    const before = from.index.get(address);
    if (before === undefined) resources.push(change(address, "added"));
    else if (before !== hash) resources.push(change(address, "changed"));
  }
  for (const address of from.index.keys()) {
    if (!to.index.has(address)) resources.push(change(address, "removed"));
  }
  resources.sort((a, b) => compare(a.address, b.address));

  const changed = resources.filter((r) => r.kind === "changed");
  const detailed = new Set(changed.slice(0, MAX_DETAILED_CHANGES).map((r) => r.address));
  // Picked before `from` is parsed again, and `to`'s tree is not referenced past this.
  const after = pickInstances(toRead.doc, detailed);
  toRead.doc = {};
  // Parsed again only when it was dropped, and then only if some instance needs its paths.
  if (fromDoc === undefined && detailed.size > 0) {
    const again = parse(fromData);
    fromDoc = again.ok ? again.doc : {};
  }
  const before = pickInstances(fromDoc ?? {}, detailed);
  for (const r of changed) {
    if (!detailed.has(r.address)) {
      r.pathsTruncated = true;
      continue;
    }
    const paths: string[] = [];
    r.pathsTruncated = !diffPaths(before.get(r.address), after.get(r.address), "", 0, paths);
    r.changedPaths = paths.sort(compare);
  }

  return {
    comparable: true,
    from: from.header,
    to: to.header,
    resources,
    outputs: diffOutputs(from.outputs, to.outputs),
    pathsTruncated: changed.length > detailed.size,
  };
}

function parse(data: Uint8Array): { ok: true; doc: Json } | { ok: false; detail: string } {
  const read = readStateDocument(data);
  return read.format === "terraform_json" ? { ok: true, doc: read.doc } : { ok: false, detail: read.detail };
}

const TOO_DEEP = "it is nested too deeply to read";

/** Undefined when a value is nested too deeply to serialize (JSON.stringify runs out of stack). */
function reduce(doc: Json): Side | undefined {
  try {
    return reduceOrThrow(doc);
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

function reduceOrThrow(doc: Json): Side {
  const index = new Map<string, string>();
  forEachResource(doc, (b) => {
    for (const i of b.instances) {
      index.set(b.address + i.key, hashOf(i.value));
    }
  });
  const outputs = new Map(
    readOutputs(doc).map((o) => [o.name, { shown: maskOutput(o), hash: hashOf({ t: o.type, v: o.value }) }]),
  );
  return { header: readHeader(doc), index, outputs };
}

function pickInstances(doc: Json, wanted: ReadonlySet<string>): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (wanted.size === 0) return out;
  forEachResource(doc, (b) => {
    for (const i of b.instances) {
      const address = b.address + i.key;
      if (wanted.has(address)) out.set(address, i.value);
    }
  });
  return out;
}

function change(address: string, kind: ChangeKind): ResourceChange {
  return { address, kind, changedPaths: [], pathsTruncated: false };
}

/**
 * Appends the paths where `a` and `b` differ to `out`; false once `out` is full (more differ).
 * Arrays of different lengths and values of different kinds differ as a whole.
 */
function diffPaths(a: unknown, b: unknown, path: string, depth: number, out: string[]): boolean {
  if (a === b) return true;
  const bothArrays = Array.isArray(a) && Array.isArray(b) && a.length === b.length;
  const bothObjects = isObject(a) && isObject(b);
  if (depth >= MAX_PATH_DEPTH || !(bothArrays || bothObjects)) {
    if (depth >= MAX_PATH_DEPTH && JSON.stringify(a) === JSON.stringify(b)) return true;
    return report(path || "(instance)", out);
  }
  if (bothArrays) {
    for (let i = 0; i < a.length; i++) {
      if (!diffPaths(a[i], b[i], `${path}[${i}]`, depth + 1, out)) return false;
    }
    return true;
  }
  const x = a as Json;
  const y = b as Json;
  for (const key of Object.keys(x)) {
    const sub = join(path, key);
    if (!(key in y)) {
      if (!report(sub, out)) return false;
    } else if (!diffPaths(x[key], y[key], sub, depth + 1, out)) return false;
  }
  for (const key of Object.keys(y)) {
    if (!(key in x) && !report(join(path, key), out)) return false;
  }
  return true;
}

function report(path: string, out: string[]): boolean {
  if (out.length >= MAX_PATHS_PER_RESOURCE) return false;
  out.push(path);
  return true;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function join(path: string, key: string): string {
  if (!IDENTIFIER.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === "" ? key : `${path}.${key}`;
}

function diffOutputs(from: Side["outputs"], to: Side["outputs"]): OutputChange[] {
  const out: OutputChange[] = [];
  for (const [name, after] of to) {
    const before = from.get(name);
    if (before === undefined) out.push({ name, kind: "added", from: undefined, to: after.shown });
    else if (before.hash !== after.hash || before.shown.sensitive !== after.shown.sensitive) {
      // Like a plan's `(sensitive value)`: that a secret changed is shown, never what it is.
      out.push({ name, kind: "changed", from: before.shown, to: after.shown });
    }
  }
  for (const [name, before] of from) {
    if (!to.has(name)) out.push({ name, kind: "removed", from: before.shown, to: undefined });
  }
  return out.sort((a, b) => compare(a.name, b.name));
}

function hashOf(value: unknown): string {
  return createHash("sha1")
    .update(JSON.stringify(value) ?? "")
    .digest("base64");
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
