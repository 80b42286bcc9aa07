import { InvalidArgumentError, NotFoundError } from "../errors.ts";

export const TERRAFORM_STATE_PREFIX = "/terraform/state/";

export interface TerraformTarget {
  kind: "state" | "lock";
  workspace: string;
  query: URLSearchParams;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const HEX2 = /^[0-9A-Fa-f]{2}$/;

/**
 * Percent-decodes one path segment into a UTF-8 string. `+` stays a plus (it only means a space in
 * query strings). Characters above U+00FF can only come from a client that sent raw UTF-8 which the
 * HTTP layer already decoded; they are re-encoded so every byte is decoded exactly once.
 */
export function decodePathSegment(raw: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; ) {
    const ch = raw.charCodeAt(i);
    if (ch === 0x25 /* % */) {
      const hex = raw.slice(i + 1, i + 3);
      if (!HEX2.test(hex)) {
        throw new InvalidArgumentError(
          `workspace name in the path has a malformed percent-escape ${JSON.stringify(raw.slice(i, i + 3))} ` +
            `at position ${i}: "%" must be followed by two hex digits (send "%25" for a literal "%")`,
        );
      }
      bytes.push(Number.parseInt(hex, 16));
      i += 3;
    } else if (ch <= 0xff) {
      bytes.push(ch);
      i += 1;
    } else {
      const cp = raw.codePointAt(i) ?? ch;
      bytes.push(...Buffer.from(String.fromCodePoint(cp), "utf8"));
      i += cp > 0xffff ? 2 : 1;
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new InvalidArgumentError(
      `workspace name in the path is not valid UTF-8 once percent-decoded (${JSON.stringify(raw)})`,
    );
  }
}

/**
 * Splits `/terraform/state/{workspace}[/lock][?query]`. The workspace is one path segment, so a
 * `/` inside a name travels as `%2F`; it is decoded here and checked by the coordinator, like every
 * other workspace name.
 */
export function parseTerraformTarget(url: string): TerraformTarget {
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
  if (!path.startsWith(TERRAFORM_STATE_PREFIX)) {
    throw new NotFoundError(`no Terraform state route at ${JSON.stringify(path)}`);
  }
  const segments = path.slice(TERRAFORM_STATE_PREFIX.length).split("/");
  const [rawName, suffix] = segments;
  let kind: TerraformTarget["kind"];
  if (segments.length === 1) kind = "state";
  else if (segments.length === 2 && suffix === "lock") kind = "lock";
  else {
    throw new NotFoundError(
      `no Terraform state route at ${JSON.stringify(path)}: the paths are ` +
        `${TERRAFORM_STATE_PREFIX}{workspace} and ${TERRAFORM_STATE_PREFIX}{workspace}/lock ` +
        `(a "/" inside a workspace name is sent as "%2F")`,
    );
  }
  // The coordinator checks the name itself, like every name that enters it.
  return { kind, workspace: decodePathSegment(rawName ?? ""), query };
}

/**
 * The `?ID=` lock ID of a write. OpenTofu sets it only while it holds the lock (`query.Set`, so
 * once); an empty value carries no ID. Repeating the parameter is ambiguous and refused.
 */
export function lockIdFromQuery(query: URLSearchParams): string | undefined {
  const ids = query.getAll("ID");
  if (ids.length > 1) {
    throw new InvalidArgumentError(
      `the ID query parameter is given ${ids.length} times; send the lock ID once`,
    );
  }
  const id = ids[0];
  return id === undefined || id === "" ? undefined : id;
}
