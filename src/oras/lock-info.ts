import { InvalidArgumentError } from "../errors.ts";

/**
 * Terraform/OpenTofu's statemgr.LockInfo. `created` stays a string so a holder's time survives a
 * round trip with its nanoseconds (JavaScript dates stop at milliseconds).
 */
export interface LockInfo {
  id: string;
  operation: string;
  info: string;
  who: string;
  version: string;
  /** RFC 3339 (Go writes nanoseconds). */
  created: string;
  path: string;
}

export function emptyLockInfo(): LockInfo {
  return { id: "", operation: "", info: "", who: "", version: "", created: "", path: "" };
}

/** JSON in Go's field order and casing, exactly what OpenTofu and ghoten marshal. */
export function lockInfoToGoJson(info: LockInfo): string {
  return JSON.stringify({
    ID: info.id,
    Operation: info.operation,
    Info: info.info,
    Who: info.who,
    Version: info.version,
    Created: info.created === "" ? "0001-01-01T00:00:00Z" : info.created,
    Path: info.path,
  });
}

const FIELDS = [
  ["ID", "id"],
  ["Operation", "operation"],
  ["Info", "info"],
  ["Who", "who"],
  ["Version", "version"],
  ["Created", "created"],
  ["Path", "path"],
] as const;

/**
 * Parses OpenTofu's LockInfo JSON. Every key is optional (a force-unlock body carries only `ID`),
 * but a present key must be a string; the error names the field.
 */
export function lockInfoFromGoJson(text: string): LockInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`lock info is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new InvalidArgumentError("lock info must be a JSON object");
  }
  const obj = raw as Record<string, unknown>;
  const out = emptyLockInfo();
  for (const [goKey, key] of FIELDS) {
    const v = obj[goKey];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") {
      throw new InvalidArgumentError(`lock info field ${JSON.stringify(goKey)} must be a string`);
    }
    out[key] = v;
  }
  if (out.created === "0001-01-01T00:00:00Z") out.created = "";
  return out;
}
