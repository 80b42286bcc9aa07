import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { AuditLog } from "../audit/audit-log.ts";
import type { Coordinator } from "../coordinator/types.ts";
import type { Logger } from "../log.ts";
import type { Principal } from "../rpc/principal.ts";

/** Requests and responses as the HTTP edge hands them over: HTTP/1.1 or the HTTP/2 compatibility API. */
export type HttpRequest = IncomingMessage | Http2ServerRequest;
export type HttpResponse = ServerResponse | Http2ServerResponse;

/** The caller as the server's authentication point established it. */
export type RoutePrincipal = Principal;

/**
 * What the HTTP edge passes a mounted route (src/http's RouteContext), declared here so this layer
 * does not import the edge; the server checks the shape where the route is mounted.
 */
export interface RouteContext {
  /**
   * The server's one authentication point: resolves to the caller, or rejects with
   * UnauthenticatedError / PermissionDeniedError, which the route answers in its own protocol.
   */
  authenticate(): Promise<RoutePrincipal>;
  /** Aborts when the client goes away, the body stalls, or the server stops waiting for the request. */
  signal: AbortSignal;
}

/** What the request is about to do, for the authorisation hook. */
export type TerraformHttpAction = "read" | "write" | "delete" | "lock" | "unlock";

export interface TerraformHttpAccess {
  workspace: string;
  action: TerraformHttpAction;
  /** The authenticated caller. */
  principal: RoutePrincipal;
}

/**
 * Called once per request after the server's authentication, when the workspace and action are
 * known and before any body is read or any state touched. Rejects with PermissionDeniedError (403)
 * or UnauthenticatedError (401) to refuse.
 */
export type TerraformHttpAuthorize = (
  req: HttpRequest,
  access: TerraformHttpAccess,
) => Promise<TerraformHttpGrant | undefined>;

/** What an allowed request may be shown. */
export interface TerraformHttpGrant {
  /** A refusal naming the lock's holder shows its lock ID (the caller may lock the workspace). */
  showLockIds: boolean;
}

export interface TerraformHttpRouteOptions {
  coordinator: Coordinator;
  logger: Logger;
  /** Largest state accepted on a write, in bytes; larger bodies get 413 naming this limit. */
  maxStateSize: number;
  authorize?: TerraformHttpAuthorize | undefined;
  /**
   * How long a LOCK that finds the lock held waits for it in the workspace's line before it is
   * answered 423, in ms; the caller keeps its place across its retries. 0 = answer 423 at once,
   * keeping no place. Default DEFAULT_HTTP_LOCK_WAIT_MS.
   */
  lockWaitMs?: number | undefined;
  /** Where each request's audit record goes (state reads and changes); default: none are made. */
  audit?: AuditLog | undefined;
}
