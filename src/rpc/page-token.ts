/**
 * Page tokens for the list RPCs: an opaque cursor (the last item of the previous page) bound to
 * the request it was issued for. A token is only a position, so a hand-made one grants nothing; it
 * is checked so that a token from another request fails clearly instead of paging oddly.
 */
import { InvalidArgumentError } from "../errors.ts";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** Zero means the default; larger than the maximum is the maximum; negative is an error. */
export function pageSize(requested: number): number {
  if (requested < 0) throw new InvalidArgumentError(`page_size must not be negative, got ${requested}`);
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

interface TokenBody {
  /** What the listing was for (e.g. the workspace and view). */
  s: string;
  /** The last item of the previous page. */
  a: string;
}

export function encodePageToken(scope: string, after: string): string {
  const body: TokenBody = { s: scope, a: after };
  return Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
}

/** The cursor in `token`, or undefined for the first page. */
export function decodePageToken(token: string, scope: string): string | undefined {
  if (token === "") return undefined;
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw new InvalidArgumentError("page_token is not a token this server issued");
  }
  const b = body as Partial<TokenBody> | null;
  if (typeof b !== "object" || b === null || typeof b.s !== "string" || typeof b.a !== "string") {
    throw new InvalidArgumentError("page_token is not a token this server issued");
  }
  if (b.s !== scope) throw new InvalidArgumentError("page_token was issued for a different request");
  return b.a;
}
