/**
 * What a web browser may ask of this server, decided before any probe, route or RPC sees the
 * request. Non-browser clients (terraform, tofu, gRPC, curl) send no `Origin`, so only the Host
 * rule concerns them.
 *
 * - Host (DNS rebinding): with an allow-list, a request naming another host (`Host`, or HTTP/2's
 *   `:authority`) gets 421 Misdirected Request. A rebinding page reaches a loopback-bound server
 *   under the attacker's own name, which is never on the list; the loopback names always are.
 * - Origin (cross-site requests): a request that carries `Origin` is served only when that origin
 *   is the server's own (`scheme://host` of the request itself: the dashboard) or configured; else
 *   403, so a cross-site POST with a simple content type (text/plain, a form) never reaches a
 *   handler. `Origin: null` (sandboxed frames, file: pages) is never allowed. The probes skip
 *   this rule (their answer is the same for everyone and changes nothing), not the Host rule.
 * - A state-changing method (anything but GET, HEAD, OPTIONS) with `Sec-Fetch-Site: cross-site`
 *   or `same-site` and no `Origin` is refused too. Browsers send `Origin` on every such request,
 *   so this only catches one whose Origin was stripped on the way; no non-browser client sends
 *   `Sec-Fetch-Site`.
 * - CORS, for configured origins on the Connect routes only (the http backend is no browser API):
 *   a preflight is answered 204 here, and actual responses carry the allow/expose headers.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { isIP } from "node:net";
import { cors } from "@connectrpc/connect";
import { REQUEST_ID_HEADER } from "../audit/request-id.ts";
import type { NodeResponse } from "./listener.ts";

/** Always allowed by a Host allow-list: no attacker's DNS answers for them. */
export const LOOPBACK_HOSTS: readonly string[] = ["localhost", "127.0.0.1", "[::1]"];

const ALLOW_METHODS = cors.allowedMethods.join(", ");
const headerList = (names: readonly string[]) => names.map((n) => n.toLowerCase()).join(", ");
const ALLOW_HEADERS = headerList([...cors.allowedHeaders, "authorization", REQUEST_ID_HEADER]);
const EXPOSE_HEADERS = headerList([...cors.exposedHeaders, REQUEST_ID_HEADER]);
/** Chromium caps a preflight's cache at 2 hours. */
const PREFLIGHT_MAX_AGE_S = "7200";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** How long a refused bare HTTP/2 stream may go on sending its body before it is reset. */
const REFUSED_STREAM_RESET_MS = 1000;

export interface BrowserGuardOptions {
  /** Origins (`scheme://host[:port]`) besides the server's own that may call it, with CORS on RPCs. */
  allowedOrigins?: readonly string[] | undefined;
  /** Host names answered for; undefined, or one entry `*`: any. `*.example.com` covers subdomains. */
  allowedHosts?: readonly string[] | undefined;
  /** The server speaks TLS: its own origin is `https://` + the request's host. */
  secure: boolean;
}

/** The request as the guards see it. */
export interface GuardRequest {
  method: string;
  headers: IncomingHttpHeaders;
  /** A probe path (/healthz, /readyz). */
  probe: boolean;
  /** A Connect route: CORS applies. */
  rpc: boolean;
}

export type GuardVerdict =
  /** Go on, adding these headers to the response (CORS for a configured origin; often none). */
  | { kind: "serve"; headers: OutgoingHttpHeaders | undefined }
  /** A CORS preflight for a configured origin, answered here. */
  | { kind: "preflight"; headers: OutgoingHttpHeaders }
  | { kind: "refuse"; status: 403 | 421; message: string };

const SERVE: GuardVerdict = { kind: "serve", headers: undefined };

export interface BrowserGuards {
  /** The one decision, for every request and bare HTTP/2 stream, before anything else runs. */
  decide(req: GuardRequest): GuardVerdict;
}

export function createBrowserGuards(opts: BrowserGuardOptions): BrowserGuards {
  const origins = new Set((opts.allowedOrigins ?? []).map(normalizeOrigin));
  const hostList = opts.allowedHosts?.map(normalizeHostEntry);
  const anyHost = hostList === undefined || hostList.includes("*");
  const hosts = new Set(hostList);
  const suffixes = (hostList ?? []).filter((h) => h.startsWith("*.")).map((h) => h.slice(1));
  const scheme = opts.secure ? "https:" : "http:";

  const hostAllowed = (host: string): boolean =>
    hosts.has(host) || suffixes.some((s) => host.endsWith(s) && host.length > s.length);

  return {
    decide({ method, headers, probe, rpc }) {
      const authority = headers[":authority"] ?? headers.host;
      if (!anyHost && authority !== undefined) {
        const host = hostOfAuthority(authority);
        if (host === undefined || !hostAllowed(host)) {
          return refuse(
            421,
            `this server does not answer for the host ${JSON.stringify(host ?? authority)}: ` +
              "add it to --allowed-hosts to allow it (the list defends against DNS rebinding)",
          );
        }
      }
      if (probe) return SERVE;
      const rawOrigin = headers.origin;
      if (rawOrigin === undefined) {
        const site = headers["sec-fetch-site"];
        if ((site === "cross-site" || site === "same-site") && !SAFE_METHODS.has(method)) {
          return refuse(
            403,
            `a ${site} ${method} request without an Origin header is refused: a browser page may call ` +
              "this server only from an origin allowed with --allowed-origins",
          );
        }
        return SERVE;
      }
      const origin = originOf(rawOrigin);
      if (origin === undefined) {
        const opaque = rawOrigin.trim() === "null";
        return refuse(
          403,
          opaque
            ? 'requests from an opaque origin ("null": a sandboxed frame, a file: page, a redirect) are refused'
            : `the Origin header ${JSON.stringify(rawOrigin)} is not an origin (scheme://host[:port])`,
        );
      }
      if (authority !== undefined && origin === originOf(`${scheme}//${authority}`)) return SERVE;
      if (!origins.has(origin)) {
        return refuse(
          403,
          `the origin ${JSON.stringify(origin)} may not call this server: ` +
            `start it with --allowed-origins ${origin} to allow it`,
        );
      }
      if (!rpc) return SERVE;
      if (method === "OPTIONS" && headers["access-control-request-method"] !== undefined) {
        return {
          kind: "preflight",
          headers: {
            "access-control-allow-origin": origin,
            "access-control-allow-methods": ALLOW_METHODS,
            "access-control-allow-headers": ALLOW_HEADERS,
            "access-control-max-age": PREFLIGHT_MAX_AGE_S,
            vary: "Origin",
          },
        };
      }
      return {
        kind: "serve",
        headers: {
          "access-control-allow-origin": origin,
          "access-control-expose-headers": EXPOSE_HEADERS,
          vary: "Origin",
        },
      };
    },
  };
}

function refuse(status: 403 | 421, message: string): GuardVerdict {
  return { kind: "refuse", status, message };
}

/** Answers a preflight or a refusal on a Node response; never throws. */
export function answerGuard(res: NodeResponse, verdict: Exclude<GuardVerdict, { kind: "serve" }>): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const { status, headers, body } = answerParts(verdict);
  // A refused HTTP/1.1 request's body is not read: the connection cannot carry another request.
  if (verdict.kind === "refuse" && !("stream" in res)) headers.connection = "close";
  (res as { writeHead(s: number, h: OutgoingHttpHeaders): unknown }).writeHead(status, headers);
  res.end(body);
}

/** Answers a preflight or a refusal on a bare HTTP/2 stream; never throws. */
export function answerGuardOnStream(
  stream: ServerHttp2Stream,
  verdict: Exclude<GuardVerdict, { kind: "serve" }>,
): void {
  if (stream.destroyed || stream.headersSent) return;
  const { status, headers, body } = answerParts(verdict);
  stream.on("error", () => {});
  stream.respond({ ":status": status, ...headers });
  stream.end(body);
  // The body is not read: drop it, and reset a stream still sending once the answer is out.
  stream.resume();
  stream.once("finish", () => {
    setTimeout(() => {
      if (!stream.destroyed) stream.destroy();
    }, REFUSED_STREAM_RESET_MS).unref();
  });
}

function answerParts(verdict: Exclude<GuardVerdict, { kind: "serve" }>) {
  if (verdict.kind === "preflight") {
    return { status: 204, headers: { ...verdict.headers, "content-length": "0" }, body: "" };
  }
  const body = `${verdict.message}\n`;
  const headers: OutgoingHttpHeaders = {
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-store",
  };
  return { status: verdict.status, headers, body };
}

/** `scheme://host[:port]` of an http(s) origin, lowercased, default port dropped; else undefined. */
function originOf(text: string): string | undefined {
  if (!/^https?:\/\/[^/?#@\s]+$/i.test(text)) return undefined;
  try {
    const url = new URL(text);
    return url.origin === "null" ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

/** A configured origin in the form requests are compared with; throws naming the problem. */
export function normalizeOrigin(text: string): string {
  const t = text.trim().replace(/\/$/, "");
  const origin = originOf(t);
  if (origin === undefined) {
    throw new Error(
      `${JSON.stringify(text)} is not an origin: write scheme://host[:port], e.g. https://dash.example.com`,
    );
  }
  return origin;
}

/**
 * The host name of a Host header or :authority (port dropped), lowercased, without a trailing dot,
 * an IPv6 address in brackets; undefined when it is not one.
 */
function hostOfAuthority(authority: string): string | undefined {
  const a = authority.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]\s/@]+)(?::\d*)?$/.exec(a);
  if (!m) return undefined;
  const host = (m[1] as string).replace(/\.$/, "");
  return host === "" ? undefined : host;
}

/**
 * An allow-list entry in the form requests are compared with: a host name or IP address without a
 * port (a bare IPv6 address gets brackets), `*.domain`, or `*`; throws naming the problem.
 */
export function normalizeHostEntry(text: string): string {
  const t = text.trim().toLowerCase().replace(/\.$/, "");
  if (t === "*") return t;
  if (isIP(t) === 6) return `[${t}]`;
  if (/^\[[0-9a-f:.]+\]$/.test(t) && isIP(t.slice(1, -1)) === 6) return t;
  const name = t.startsWith("*.") ? t.slice(2) : t;
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(name)) {
    throw new Error(
      `${JSON.stringify(text)} is not a host name: write names or addresses without a port, ` +
        "e.g. localhost, tfstate.example.com, *.example.com, 10.0.0.5, [::1], or * for any",
    );
  }
  return t;
}

/**
 * The Host allow-list a server listening on `listenHost` uses: the loopback names, the listen host
 * unless it is a wildcard, and `extra` (the `--allowed-hosts` entries extend the list). Undefined
 * (any host) when `extra` holds `*`, or when nothing is configured and the server listens on every
 * interface: it is then reached under names it cannot know, and identity is its defence.
 */
export function allowedHostsFor(
  listenHost: string,
  extra: readonly string[] | undefined,
): string[] | undefined {
  const entries = extra?.map(normalizeHostEntry);
  if (entries?.includes("*")) return undefined;
  const wildcard = listenHost === "0.0.0.0" || listenHost === "::" || listenHost === "";
  if (wildcard && entries === undefined) return undefined;
  const list = new Set(LOOPBACK_HOSTS);
  if (!wildcard) list.add(normalizeHostEntry(listenHost));
  for (const e of entries ?? []) list.add(e);
  return [...list];
}
