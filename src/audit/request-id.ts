/**
 * The request ID every audit record carries: the client's `X-Request-Id` when it sent a fit one
 * (so a caller can find its own calls), else one made here. The edge returns it as a response
 * header either way.
 */
import { randomUUID } from "node:crypto";

export const REQUEST_ID_HEADER = "x-request-id";

/** 1 to 128 printable ASCII characters, no spaces: fit for a log line and a response header. */
const FIT = /^[\x21-\x7e]{1,128}$/;

/** The request's ID: `value` when it is one fit ID (not repeated, bounded, printable), else a new UUID. */
export function requestIdFrom(value: string | readonly string[] | null | undefined): string {
  return typeof value === "string" && FIT.test(value) ? value : randomUUID();
}
