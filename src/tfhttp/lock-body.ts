import { InvalidArgumentError } from "../errors.ts";
import { type LockInfo, lockInfoFromGoJson } from "../oras/index.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });
/** Go's time.Time JSON form (RFC 3339, up to nanoseconds); the CLI parses a holder's `Created` with it. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Parses the LockInfo body of LOCK/UNLOCK. `ID` is required; a present `Created` must be a time Go
 * can read back, because this LockInfo is what a blocked CLI receives (and parses) in a 423.
 */
export function parseLockBody(body: Uint8Array, request: "lock" | "unlock"): LockInfo {
  if (body.byteLength === 0) {
    throw new InvalidArgumentError(
      `the ${request} request has no body: it needs a LockInfo JSON object with an ID`,
    );
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new InvalidArgumentError("lock info is not valid UTF-8");
  }
  const info = lockInfoFromGoJson(text);
  if (info.id === "") {
    throw new InvalidArgumentError(
      `lock info field "ID" is missing or empty: the ${request} request needs a lock ID`,
    );
  }
  if (info.created !== "" && !RFC3339.test(info.created)) {
    throw new InvalidArgumentError(
      `lock info field "Created" must be an RFC 3339 time such as "2006-01-02T15:04:05Z", got ${JSON.stringify(info.created)}`,
    );
  }
  return info;
}

/**
 * `tofu force-unlock` (v1.10+) sends a LockInfo whose only non-empty field is the ID the user typed;
 * a normal unlock sends the LockInfo it locked with. The server treats both alike (the ID must be
 * the holder's); this only tells the log which one it was.
 */
export function isForceUnlockBody(info: LockInfo): boolean {
  return (
    info.operation === "" &&
    info.info === "" &&
    info.who === "" &&
    info.version === "" &&
    info.created === "" &&
    info.path === ""
  );
}
