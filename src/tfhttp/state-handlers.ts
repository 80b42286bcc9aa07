import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { HandlerContext } from "./handler-context.ts";
import { readLimitedBody } from "./request-body.ts";
import { lockIdFromQuery } from "./request-path.ts";
import type { Reply } from "./responses.ts";

/** GET (and HEAD): the state with its MD5, which OpenTofu uses to tell whether the state changed. */
export async function handleStateRead(c: HandlerContext): Promise<Reply> {
  const payload = await c.coordinator.getState(c.workspace, { signal: c.signal });
  if (payload === null) throw new NotFoundError(`workspace ${JSON.stringify(c.workspace)} has no state`);
  return {
    status: 200,
    body: payload.data,
    headers: {
      "content-type": "application/json",
      "content-md5": Buffer.from(payload.md5).toString("base64"),
      // State holds secrets: no shared cache may keep a copy.
      "cache-control": "no-store",
    },
    facts: { version: payload.version, digest: payload.digest },
  };
}

/**
 * POST/PUT: a new state, fenced by `?ID=` while the workspace is locked. The body is read whole
 * before the coordinator call, and the coordinator stores it as a blob before the write's turn, so
 * a slow body holds up no lock or write on the workspace.
 */
export async function handleStateWrite(c: HandlerContext): Promise<Reply> {
  const lockId = lockIdFromQuery(c.query);
  const body = await readLimitedBody(c.req, c.maxStateSize, "state");
  if (body.byteLength === 0) {
    throw new InvalidArgumentError("the state write has no body: send the state JSON");
  }
  const result = await c.coordinator.putState(c.workspace, body, { lockId, signal: c.signal });
  return { status: 200, facts: { version: result.version, digest: result.digest } };
}

/** DELETE: removes the current state (history stays); fenced like a write. */
export async function handleStateDelete(c: HandlerContext): Promise<Reply> {
  const lockId = lockIdFromQuery(c.query);
  await c.coordinator.deleteState(c.workspace, { lockId, signal: c.signal });
  return { status: 200 };
}
