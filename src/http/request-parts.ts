/** Pieces of an incoming request that every handler at the edge reads the same way. */
import type { IncomingHttpHeaders } from "node:http";

/** The path without its query string ("/" when there is none at all). */
export function pathOf(url: string | undefined): string {
  const raw = url ?? "/";
  const q = raw.indexOf("?");
  return q === -1 ? raw : raw.slice(0, q);
}

/** The request's headers as a Headers object, without HTTP/2 pseudo-headers. */
export function requestHeaders(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (name.startsWith(":") || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/** Whether a content-encoding header (Connect's or gRPC's) leaves the body as it is. */
export function uncompressed(encoding: string | string[] | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}
