/**
 * The edge: one listener serving Connect (JSON and binary), gRPC and gRPC-Web over HTTP/1.1 and
 * HTTP/2 (h2c, or TLS with ALPN), the probes, and extra routes mounted by prefix (the Terraform http
 * backend). Every request passes the browser guards first (Origin, Host: browser-guards.ts), then the
 * one authentication point; state reads and changes leave an audit record when an AuditLog is given.
 * `createServer` is the factory tests start on port 0.
 */
import { Http2ServerRequest, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { createContextValues } from "@connectrpc/connect";
import type { AuditLog } from "../audit/audit-log.ts";
import { REQUEST_ID_HEADER, requestIdFrom } from "../audit/request-id.ts";
import type { Coordinator } from "../coordinator/types.ts";
import { type Logger, noopLogger } from "../log.ts";
import { DEFAULT_MAX_STATE_SIZE } from "../oras/wire-format.ts";
import { Policy, type PolicySource } from "../policy/policy.ts";
import { auditGateRefusal, auditInterceptor } from "../rpc/audit-interceptor.ts";
import { authorizationInterceptor } from "../rpc/authorization.ts";
import { errorInterceptor, toConnectError } from "../rpc/errors.ts";
import { METHOD_ACCESS } from "../rpc/method-access.ts";
import { remoteAddressKey } from "../rpc/peer-address.ts";
import { type Principal, principalKey } from "../rpc/principal.ts";
import { Readiness } from "../rpc/readiness.ts";
import { rpcServices } from "../rpc/routes.ts";
import { rpcTelemetry, telemetryInterceptor } from "../rpc/telemetry-interceptor.ts";
import { type Authenticator, type AuthRequest, allowAll } from "./auth.ts";
import {
  bodyIdleError,
  DEFAULT_BODY_IDLE_TIMEOUT_MS,
  releaseLater,
  resetStalledStream,
  watchBodyIdle,
} from "./body-idle.ts";
import { answerGuard, answerGuardOnStream, createBrowserGuards } from "./browser-guards.ts";
import { type Call, CallRegistry, clientGone } from "./call-registry.ts";
import { COMPRESS_MIN_BYTES, SERVER_COMPRESSIONS } from "./compression.ts";
import { ConnectionTracker } from "./connections.ts";
import type { Dashboard } from "./dashboard.ts";
import { createListener, type NodeHandler, type NodeRequest, type NodeResponse } from "./listener.ts";
import { PROBE_PATHS, serveProbe } from "./probes.ts";
import { pathOf, requestHeaders } from "./request-parts.ts";
import { checkConnectGet } from "./request-validation.ts";
import { createRpcFront } from "./rpc-front.ts";

export type { Principal } from "../rpc/principal.ts";
export type { Authenticator, AuthRequest } from "./auth.ts";
export type { NodeRequest, NodeResponse } from "./listener.ts";

/** What an extra route gets besides the request and response. */
export interface RouteContext {
  /**
   * The server's one authentication point for this request: the caller, or UnauthenticatedError /
   * PermissionDeniedError, which the route answers in its own protocol (one error mapping each).
   */
  authenticate(): Promise<Principal>;
  /** The call's signal: the client went away, the body stalled, or the server stops waiting. */
  signal: AbortSignal;
  logger: Logger;
}

/** A handler mounted under a path prefix, e.g. the Terraform http backend at `/terraform/state/`. */
export interface ExtraRoute {
  /** Matches the path itself and everything below it (`/a` matches `/a` and `/a/b`, not `/ab`). */
  prefix: string;
  handle(req: NodeRequest, res: NodeResponse, ctx: RouteContext): Promise<void>;
}

export interface ServerOptions {
  coordinator: Coordinator;
  logger?: Logger | undefined;
  routes?: readonly ExtraRoute[] | undefined;
  /** Default: everyone is let in as the anonymous principal. */
  authenticate?: Authenticator | undefined;
  /** Who may do what to which workspace. Default: every caller may do everything. */
  policy?: PolicySource | undefined;
  /** Largest message read or written, in bytes. Default 4 MiB (gRPC's usual client limit). */
  maxMessageBytes?: number | undefined;
  /** The backend's maximum state size in bytes, to refuse larger states before any registry work. */
  maxStateSize?: number | undefined;
  /** PEM certificate chain and key: serve TLS (ALPN h2 and http/1.1) instead of cleartext. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** How long shutdown waits for running calls before cutting them off. Default 10 s. */
  shutdownGraceMs?: number | undefined;
  /** How often a health Watch stream re-checks the registry. Default 5 s. */
  healthWatchIntervalMs?: number | undefined;
  /** How long one readiness answer is reused. Default 1 s. */
  readinessCacheMs?: number | undefined;
  /**
   * How long a request body may pause while the server waits for it before the request is ended
   * (408 for plain HTTP, DEADLINE_EXCEEDED for RPCs). Default 30 s.
   */
  bodyIdleTimeoutMs?: number | undefined;
  /** How long an HTTP/1.1 request's headers may take to arrive (then 408 and close). Default 60 s. */
  headersTimeoutMs?: number | undefined;
  /**
   * Origins (`scheme://host[:port]`) besides the server's own whose pages may call it, with CORS on
   * the RPC routes. A request with any other `Origin` is refused 403 (browser-guards.ts).
   */
  allowedOrigins?: readonly string[] | undefined;
  /**
   * Host names the server answers for (others: 421), e.g. browser-guards.ts's `allowedHostsFor`.
   * Default (undefined), or an entry `*`: any host.
   */
  allowedHosts?: readonly string[] | undefined;
  /** Where the audit records of state reads and changes go; default: none are made. */
  audit?: AuditLog | undefined;
  /** The browser dashboard's files (dashboard.ts `loadDashboard`), served at `/`; default: none. */
  dashboard?: Dashboard | undefined;
}

export interface ServerAddress {
  host: string;
  port: number;
  /** Base URL for clients, e.g. `http://127.0.0.1:8080`. */
  url: string;
}

export interface TfstateServer {
  /** Starts listening; port 0 picks a free port. Default host 127.0.0.1. */
  listen(port?: number, host?: string): Promise<ServerAddress>;
  readonly address: ServerAddress | undefined;
  /**
   * Graceful stop: refuse new connections, report not ready, end WatchLock and health Watch
   * streams with UNAVAILABLE, let running calls finish (up to the grace period, then cut them
   * off), and resolve once every connection is closed. Does not close the coordinator.
   */
  shutdown(): Promise<void>;
  /** Aborts when shutdown begins. */
  readonly drainSignal: AbortSignal;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** After cutting calls off, time for their error responses to be written before sockets close. */
const CUT_OFF_FLUSH_MS = 500;
/** How long a stream whose response is done may wait for the rest of its request. */
const ABANDONED_REQUEST_RESET_MS = 1000;

export function createServer(opts: ServerOptions): TfstateServer {
  const logger = opts.logger ?? noopLogger;
  const authenticate = opts.authenticate ?? allowAll;
  const policy = opts.policy ?? Policy.allowAll();
  const routes = [...(opts.routes ?? [])];
  const secure = opts.tls !== undefined;
  const graceMs = opts.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const bodyIdleMs = opts.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS;
  const { audit } = opts;
  const guards = createBrowserGuards({
    allowedOrigins: opts.allowedOrigins,
    allowedHosts: opts.allowedHosts,
    secure,
  });

  const calls = new CallRegistry();
  const tracker = new ConnectionTracker();
  const readiness = new Readiness({
    check: (o) => opts.coordinator.ready(o),
    drainSignal: calls.drainSignal,
    ...(opts.readinessCacheMs !== undefined ? { cacheMs: opts.readinessCacheMs } : {}),
  });

  const rpc = createRpcFront({
    services: rpcServices({
      coordinator: opts.coordinator,
      logger,
      maxMessageBytes,
      maxStateSize: opts.maxStateSize ?? DEFAULT_MAX_STATE_SIZE,
      readiness,
      healthWatchIntervalMs: opts.healthWatchIntervalMs,
    }),
    // The audit record sees each call's principal and final code, denials included: inside
    // telemetry, outside authorization and error mapping.
    interceptors: [
      telemetryInterceptor(rpcTelemetry()),
      ...(audit ? [auditInterceptor(audit)] : []),
      authorizationInterceptor(policy),
      errorInterceptor(logger),
    ],
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    acceptCompression: [...SERVER_COMPRESSIONS],
    compressMinBytes: COMPRESS_MIN_BYTES,
    logger,
    contextValues: (remoteAddress) => createContextValues().set(remoteAddressKey, remoteAddress),
    async requestGate(ctx) {
      if (METHOD_ACCESS.get(ctx.method)?.kind !== "public") {
        try {
          const principal = await authenticate({
            method: ctx.requestMethod,
            path: new URL(ctx.url, "http://localhost").pathname,
            headers: ctx.requestHeader,
            remoteAddress: ctx.values.get(remoteAddressKey),
            secure,
            kind: "rpc",
          });
          ctx.values.set(principalKey, principal);
        } catch (err) {
          const refused = toConnectError(err, logger, `${ctx.service.typeName}/${ctx.method.name}`);
          if (audit) auditGateRefusal(audit, ctx, refused);
          throw refused;
        }
      }
      // A GET carries its message in the query, which Connect decodes before any interceptor runs.
      await checkConnectGet(ctx, { compressions: SERVER_COMPRESSIONS, readMaxBytes: maxMessageBytes });
    },
  });

  /**
   * A call of the registry for one request, aborted when its client goes away; closed when `run`
   * settles. Not an async function: nothing stays suspended for the hours a watch may last.
   */
  const withCall = (
    longLived: boolean,
    body: NodeRequest | ServerHttp2Stream,
    closed: { once(event: "close", fn: () => void): unknown; readonly writableFinished: boolean },
    run: (call: Call) => Promise<void>,
  ): Promise<void> => {
    const call = calls.open(longLived);
    // A bare stream closes once, and its call has answered by then or never will; a Node response
    // that closes after it finished is the normal end.
    const bare = body === closed;
    closed.once("close", () => {
      if (bare || !closed.writableFinished) call.abort(clientGone());
    });
    // A body cut short by the client (a reset stream; HTTP/2's compatibility layer then ends the
    // request as if it were complete) must never read as a whole one: the call is aborted first.
    // A bare stream's own "close" says as much.
    if (!bare) body.once("aborted", () => call.abort(clientGone()));
    let running: Promise<void>;
    try {
      running = run(call);
    } catch (err) {
      running = Promise.reject(err);
    }
    return running.finally(() => call.close());
  };

  /**
   * An RPC body that stops arriving while the call waits for it (abortable-body.ts times each read)
   * ends the call; `release` frees what the rest of the body holds a moment later.
   */
  const onStall = (call: Call, beforeAbort: () => void, release: () => void) => () => {
    logger.info("request body stalled: ending the request", { idleMs: bodyIdleMs });
    beforeAbort();
    call.abort(bodyIdleError(bodyIdleMs));
    releaseLater(release);
  };

  const dispatch = async (req: NodeRequest, res: NodeResponse, path: string) => {
    // The connection's own protocol, never the request line's version (the listener refuses
    // versions other than 1.x on HTTP/1 connections).
    const http2 = req instanceof Http2ServerRequest;
    if (http2) {
      closeAbandonedRequest(req, tracker);
    } else {
      tracker.http1Request(req.socket, res);
      if (tracker.draining && !res.headersSent) res.setHeader("connection", "close");
    }
    // The browser guards come first: a refused request reaches no probe, route or RPC.
    const probe = PROBE_PATHS.has(path);
    const method = probe ? undefined : rpc.route(path);
    const verdict = guards.decide({ method: req.method ?? "", headers: req.headers, probe, rpc: !!method });
    if (verdict.kind !== "serve") {
      answerGuard(res, verdict);
      return;
    }
    if (probe) {
      await serveProbe(path, req, res, readiness);
      return;
    }
    for (const [name, value] of Object.entries(verdict.headers ?? {})) {
      if (value !== undefined) res.setHeader(name, value);
    }
    // The caller's request ID when fit, else a new one: answered, and read by the audit records.
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    req.headers[REQUEST_ID_HEADER] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const release = () => releaseStalled(req);
    // The rest of a stalled body will not come: an HTTP/1.1 connection cannot carry another request.
    const noReuse = () => {
      if (!http2 && !res.headersSent) res.setHeader("connection", "close");
    };
    // The dashboard's files: after the guards, before the routes and RPCs (no path of theirs overlaps).
    if (opts.dashboard?.has(path)) {
      opts.dashboard.serve(req, res, path);
      return;
    }
    const route = routes.find((r) => matches(r.prefix, path));
    if (route) {
      await withCall(false, req, res, (call) => {
        // Routes speak plain HTTP: a stalled body is answered here, 408, whatever the route was doing.
        watchBodyIdle(req, bodyIdleMs, {
          onIdle: (err) => {
            logger.info("request body stalled: ending the request", { idleMs: bodyIdleMs });
            noReuse();
            answerIdle(res, err);
            call.abort(err);
          },
          release,
        });
        return route.handle(req, res, {
          authenticate: () => authenticate(authRequest(req, path, secure)),
          signal: call.signal,
          logger,
        });
      });
      return;
    }
    if (method === undefined) {
      res.statusCode = 404;
      res.end();
      return;
    }
    await withCall(method.longLived, req, res, (call) =>
      rpc.serve(req, res, call, { ms: bodyIdleMs, onIdle: onStall(call, noReuse, release) }),
    );
  };

  /** Serves one request; whatever fails in it ends that request only, never the process. */
  const handler: NodeHandler = (req, res) => {
    const path = pathOf(req.url);
    dispatch(req, res, path).catch((err: unknown) => {
      logger.error("request failed", { method: req.method, path, error: err });
      endFailed(res);
    });
  };

  /** Takes the bare HTTP/2 streams of the methods the front serves without request objects. */
  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean => {
    const path = pathOf(headers[":path"]);
    if (!rpc.takesStream(path)) return false;
    const verdict = guards.decide({
      method: String(headers[":method"] ?? ""),
      headers,
      probe: false,
      rpc: true,
    });
    if (verdict.kind !== "serve") {
      answerGuardOnStream(stream, verdict);
      return true;
    }
    const requestId = requestIdFrom(headers[REQUEST_ID_HEADER]);
    headers[REQUEST_ID_HEADER] = requestId;
    const responseHeaders = new Headers({ [REQUEST_ID_HEADER]: requestId });
    for (const [name, value] of Object.entries(verdict.headers ?? {}))
      responseHeaders.set(name, String(value));
    const longLived = rpc.route(path)?.longLived ?? false;
    withCall(longLived, stream, stream, (call) =>
      rpc.serveStream(
        stream,
        headers,
        call,
        {
          ms: bodyIdleMs,
          onIdle: onStall(
            call,
            () => {},
            () => resetStalledStream(stream),
          ),
        },
        responseHeaders,
      ),
    ).catch((err: unknown) => {
      logger.error("request failed", { path, error: err });
      stream.destroy();
    });
    return true;
  };

  const listener = createListener({
    handler,
    onStream,
    tracker,
    tls: opts.tls,
    headersTimeoutMs: opts.headersTimeoutMs,
    onClientError: (err) => logger.debug("client connection error", { error: err }),
    onHandlerError: (err) => logger.error("request failed", { error: err }),
  });

  let address: ServerAddress | undefined;
  let stopping: Promise<void> | undefined;

  return {
    get address() {
      return address;
    },
    drainSignal: calls.drainSignal,

    listen(port = 0, host = "127.0.0.1") {
      return new Promise<ServerAddress>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        listener.server.once("error", onError);
        listener.server.listen(port, host, () => {
          listener.server.removeListener("error", onError);
          const bound = listener.server.address();
          const boundPort = typeof bound === "object" && bound !== null ? bound.port : port;
          const urlHost = host.includes(":") ? `[${host}]` : host;
          address = { host, port: boundPort, url: `${secure ? "https" : "http"}://${urlHost}:${boundPort}` };
          resolve(address);
        });
      });
    },

    shutdown() {
      stopping ??= (async () => {
        calls.drain();
        const closed = new Promise<void>((resolve) => listener.close(resolve));
        tracker.drain();
        let graceTimer: NodeJS.Timeout | undefined;
        let flushTimer: NodeJS.Timeout | undefined;
        const forced = new Promise<void>((resolve) => {
          graceTimer = setTimeout(() => {
            logger.warn("shutdown grace period over; cutting off the calls still running", {
              connections: tracker.size,
              calls: calls.size,
              graceMs,
            });
            calls.cutOff();
            flushTimer = setTimeout(() => {
              tracker.destroyAll();
              resolve();
            }, CUT_OFF_FLUSH_MS);
          }, graceMs);
        });
        await Promise.race([closed, forced]);
        clearTimeout(graceTimer);
        clearTimeout(flushTimer);
        await closed;
      })();
      return stopping;
    },
  };
}

/**
 * A call can fail before it reads its request stream (a fenced UploadState): its response is
 * complete while the request is not. Clients that stop sending once they have the response, but
 * never end or reset their side (connect-node does this), would keep the stream open for good, and
 * at shutdown the session with it. So the rest of the body is read and dropped, and a stream still
 * half-open a moment later (once the client has surely read the trailers; an immediate RST_STREAM
 * can overtake them) is reset with NO_ERROR, as RFC 9113 §8.1 allows.
 */
function closeAbandonedRequest(req: Http2ServerRequest, tracker: ConnectionTracker): void {
  // The stream's own "finish" (our side fully sent, trailers included); the compat response's
  // "finish" only comes once the whole stream has closed.
  req.stream.once("finish", () => {
    if (req.complete || req.stream.destroyed) return;
    req.resume();
    tracker.lingering(req.stream);
    setTimeout(() => {
      // destroy() resets with NO_ERROR (close() may hold the RST_STREAM back until more is sent).
      if (!req.complete && !req.stream.destroyed) req.stream.destroy();
    }, ABANDONED_REQUEST_RESET_MS).unref();
  });
}

/** Ends a request whose handler failed: a 500 when nothing was sent yet, else a cut. Never throws. */
function endFailed(res: NodeResponse): void {
  try {
    if (!res.headersSent && !res.writableEnded) {
      res.statusCode = 500;
      res.setHeader("content-type", "text/plain; charset=utf-8");
      res.end("internal error\n");
    } else if (!res.writableFinished) {
      res.destroy();
    }
  } catch {
    res.destroy();
  }
}

/** A plain HTTP answer to a request whose body stalled (the handler's own answer, if any, is too late). */
function answerIdle(res: NodeResponse, reason: unknown): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const body = `${reason instanceof Error ? reason.message : "the request body stalled"}\n`;
  res.statusCode = 408;
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.setHeader("content-length", String(Buffer.byteLength(body)));
  res.end(body);
}

/**
 * Frees what a request with a stalled body still holds once its call has answered (or had its
 * chance to): the HTTP/2 stream, or the HTTP/1.1 connection, which cannot carry another request.
 */
function releaseStalled(req: NodeRequest): void {
  if (req.complete) return;
  if (req instanceof Http2ServerRequest) resetStalledStream(req.stream);
  else if (!req.socket.destroyed) req.socket.destroy();
}

function matches(prefix: string, path: string): boolean {
  if (prefix.endsWith("/")) return path.startsWith(prefix) || path === prefix.slice(0, -1);
  return path === prefix || path.startsWith(`${prefix}/`);
}

function authRequest(req: NodeRequest, path: string, secure: boolean): AuthRequest {
  return {
    method: req.method ?? "GET",
    path,
    headers: requestHeaders(req.headers),
    remoteAddress: (req as Http2ServerRequest).socket?.remoteAddress,
    secure,
    kind: "http",
  };
}
