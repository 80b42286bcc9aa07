import { isIP } from "node:net";
import type { ListenAddress } from "./values.ts";

/** Whether the listener answers only on loopback (127.0.0.0/8, ::1, localhost). */
export function loopbackOnly(listen: ListenAddress): boolean {
  const host = listen.host.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || host === "0:0:0:0:0:0:0:1";
  return false;
}

/**
 * Why the server must not start, or undefined: state holds secrets, so without identity it serves
 * anonymous callers only on loopback, unless the operator said so.
 */
export function exposureRefusal(
  listen: ListenAddress,
  identity: boolean,
  allowAnonymous: boolean,
): string | undefined {
  if (identity || allowAnonymous || loopbackOnly(listen)) return undefined;
  const where = listen.host === "" ? `:${listen.port}` : `${listen.host}:${listen.port}`;
  return (
    `refusing to listen on ${where} with no identity configured: anyone who can reach it could read and ` +
    "overwrite every state. Configure callers' identity (--tokens-file, --oidc-issuer with --oidc-audience, " +
    "or --oidc-config), listen on loopback (--listen 127.0.0.1:8080), or pass --allow-anonymous"
  );
}
