/**
 * The identity files (tokens, OIDC issuers) are YAML or JSON, whichever the content is: JSON is
 * YAML, so one parser reads both and knows where each value sits, and every error names the entry,
 * the field and its line.
 */
import { LineCounter, parseDocument } from "yaml";

export class IdentityFileError extends Error {}

/** A mapping of a parsed file, with the path that leads to it for error messages. */
export interface FileNode {
  /** Where this node is, e.g. `tokens[2]` (empty for the document itself). */
  readonly path: string;
  readonly value: unknown;
  /** `tokens[2].sha256 (line 7)`: the field at `key` under this node, for messages. */
  where(key?: string | number): string;
  /** A child node. */
  child(key: string | number): FileNode;
}

export interface ParsedFile {
  root: FileNode;
  /** Throws an IdentityFileError naming the file, the place and the problem. */
  fail(node: FileNode, key: string | number | undefined, problem: string): never;
}

/** Parses YAML or JSON; a syntax error names its line and column. */
export function parseIdentityFile(text: string, file: string): ParsedFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = lines.linePos(first.pos[0]);
    const at = ` at line ${pos.line}, column ${pos.col}`;
    // The parser's own message without its source excerpt.
    const message = (first.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    throw new IdentityFileError(`${file}: not valid YAML or JSON${at}: ${message}`);
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });

  const lineOf = (segments: readonly (string | number)[]): number | undefined => {
    const node = segments.length === 0 ? doc.contents : doc.getIn(segments, true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    return range ? lines.linePos(range[0]).line : undefined;
  };
  const make = (segments: readonly (string | number)[], v: unknown): FileNode => {
    const path = segments.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");
    return {
      path,
      value: v,
      where(key) {
        const at = key === undefined ? segments : [...segments, key];
        const name = key === undefined ? path : make(at, undefined).path;
        const line = lineOf(at) ?? lineOf(segments);
        return `${name === "" ? "the document" : name}${line !== undefined ? ` (line ${line})` : ""}`;
      },
      child(key) {
        const container = v as Record<string | number, unknown> | undefined;
        return make([...segments, key], container?.[key]);
      },
    };
  };
  const root = make([], value);
  return {
    root,
    fail(node, key, problem) {
      throw new IdentityFileError(`${file}: ${node.where(key)}: ${problem}`);
    },
  };
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Refuses fields other than `allowed` (a misspelt field would otherwise be silently ignored). */
export function onlyFields(file: ParsedFile, node: FileNode, allowed: readonly string[]): void {
  const record = node.value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) {
      file.fail(node, key, `unknown field ${JSON.stringify(key)} (expected ${allowed.join(", ")})`);
    }
  }
}
