/** Helpers shared by the Node and the browser entry points; not part of the package's API. */
import type { Interceptor } from "@connectrpc/connect";
import { bearerToken, type TokenSource } from "./index.js";

/** Checks a base URL; returns it parsed, and as a string without a trailing slash. */
export function checkBaseUrl(baseUrl: string): { url: URL; base: string } {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`invalid base URL ${JSON.stringify(baseUrl)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`base URL ${JSON.stringify(baseUrl)} must start with http:// or https://`);
  }
  return { url, base: url.href.replace(/\/+$/, "") };
}

/** The interceptors a client runs: the bearer token's first, then the caller's. */
export function interceptorsFor(
  token: string | TokenSource | undefined,
  extra: readonly Interceptor[] = [],
): Interceptor[] {
  return token === undefined ? [...extra] : [bearerToken(token), ...extra];
}
