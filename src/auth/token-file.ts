/**
 * The tokens file (`--tokens-file`): a name per API token and only the SHA-256 of its secret.
 *
 * ```yaml
 * tokens:
 *   - name: ci-deploy
 *     sha256: 3b5f...e1
 *     description: "deploy pipeline"
 * ```
 *
 * Every problem is an IdentityFileError naming the entry, the field and its line; a value from the
 * file is never echoed (a secret pasted by mistake must not reach a log).
 */
import {
  type FileNode,
  IdentityFileError,
  isRecord,
  onlyFields,
  type ParsedFile,
  parseIdentityFile,
} from "./config-file.ts";

export interface TokenEntry {
  readonly name: string;
  /** The 32 bytes of the secret's SHA-256. */
  readonly sha256: Buffer;
  readonly description: string | undefined;
}

export const TOKEN_NAME = /^[A-Za-z0-9._-]{1,64}$/;
export const TOKEN_NAME_RULE = "1 to 64 of A-Z a-z 0-9 . _ -";
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const ENTRY_FIELDS = ["name", "sha256", "description"] as const;
/** Fields someone might use to put the secret itself in the file. */
const SECRET_FIELDS = ["secret", "token", "password", "value"];

export { IdentityFileError as TokensFileError };

export function parseTokensFile(text: string, file: string): TokenEntry[] {
  const parsed: ParsedFile = parseIdentityFile(text, file);
  const { root } = parsed;
  if (root.value === null || root.value === undefined) {
    parsed.fail(root, undefined, "the file is empty; expected a `tokens:` list (`tokens: []` for none)");
  }
  if (!isRecord(root.value)) parsed.fail(root, undefined, "expected a mapping with a `tokens:` list");
  onlyFields(parsed, root, ["tokens"]);
  const list = root.child("tokens");
  if (!Array.isArray(list.value)) {
    parsed.fail(root, "tokens", "expected a list of entries with name and sha256 (`tokens: []` for none)");
  }
  const entries: TokenEntry[] = [];
  const byName = new Map<string, string>();
  const byHash = new Map<string, string>();
  for (let i = 0; i < list.value.length; i++) {
    const node = list.child(i);
    if (!isRecord(node.value)) parsed.fail(node, undefined, "expected a mapping with name and sha256");
    for (const field of SECRET_FIELDS) {
      if (Object.hasOwn(node.value, field)) {
        parsed.fail(
          node,
          field,
          "the file must not hold secrets, only their sha256 (`oci-tfstate token create NAME` prints the entry)",
        );
      }
    }
    onlyFields(parsed, node, ENTRY_FIELDS);
    const name = stringField(parsed, node, "name", true);
    if (!TOKEN_NAME.test(name)) parsed.fail(node, "name", `a token name is ${TOKEN_NAME_RULE}`);
    const seen = byName.get(name);
    if (seen !== undefined) parsed.fail(node, "name", `the name ${name} is already used by ${seen}`);
    byName.set(name, node.where());
    const hex = stringField(parsed, node, "sha256", true);
    if (!SHA256_HEX.test(hex))
      parsed.fail(node, "sha256", "expected 64 hex digits (the SHA-256 of the secret)");
    const other = byHash.get(hex.toLowerCase());
    if (other !== undefined) parsed.fail(node, "sha256", `the same secret is already ${other}'s`);
    byHash.set(hex.toLowerCase(), name);
    const description =
      node.child("description").value === undefined
        ? undefined
        : stringField(parsed, node, "description", false);
    entries.push(Object.freeze({ name, sha256: Buffer.from(hex, "hex"), description }));
  }
  return entries;
}

function stringField(parsed: ParsedFile, node: FileNode, field: string, required: boolean): string {
  const v = node.child(field).value;
  if (v === undefined || v === null) {
    if (required) parsed.fail(node, field, "is required");
    return "";
  }
  if (typeof v !== "string") parsed.fail(node, field, `expected a string, got ${kindOf(v)}`);
  return v;
}

function kindOf(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (isRecord(v)) return "a mapping";
  return `a ${typeof v}`;
}
