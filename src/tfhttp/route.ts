import type { AuditLog } from "../audit/audit-log.ts";
import { REQUEST_ID_HEADER, requestIdFrom } from "../audit/request-id.ts";
import { InvalidArgumentError, isTfstateError } from "../errors.ts";
import { errorBody, errorReply, type LockConflictStatus } from "./error-status.ts";
import type { HandlerContext } from "./handler-context.ts";
import {
  DEFAULT_HTTP_LOCK_WAIT_MS,
  handleLock,
  handleUnlock,
  MAX_HTTP_LOCK_WAIT_MS,
} from "./lock-handlers.ts";
import { parseTerraformTarget, TERRAFORM_STATE_PREFIX, type TerraformTarget } from "./request-path.ts";
import { jsonReply, type Reply, send } from "./responses.ts";
import { handleStateDelete, handleStateRead, handleStateWrite } from "./state-handlers.ts";
import type {
  HttpRequest,
  HttpResponse,
  RouteContext,
  RoutePrincipal,
  TerraformHttpAction,
  TerraformHttpGrant,
  TerraformHttpRouteOptions,
} from "./types.ts";

/** A route for the HTTP edge (src/http's ExtraRoute), mounted under its prefix. */
export interface TerraformHttpRoute {
  prefix: string;
  /** `ctx` comes from the server: its authentication point and the call's signal. */
  handle(req: HttpRequest, res: HttpResponse, ctx: RouteContext): Promise<void>;
}

interface Operation {
  action: TerraformHttpAction;
  /** Status of a held lock (LockError) for this operation. */
  lockConflict: LockConflictStatus;
  run(c: HandlerContext): Promise<Reply>;
}

const read: Operation = { action: "read", lockConflict: 409, run: handleStateRead };
const write: Operation = { action: "write", lockConflict: 409, run: handleStateWrite };
const remove: Operation = { action: "delete", lockConflict: 409, run: handleStateDelete };
const lock: Operation = { action: "lock", lockConflict: 423, run: handleLock };
const unlock: Operation = { action: "unlock", lockConflict: 409, run: handleUnlock };

/**
 * Methods per path. `update_method` may be POST (the default) or PUT; `lock_method`/`unlock_method`
 * are LOCK/UNLOCK by default, POST/DELETE in GitLab's convention.
 */
const ROUTES = {
  state: {
    path: `${TERRAFORM_STATE_PREFIX}{workspace}`,
    ops: new Map([
      ["GET", read],
      ["HEAD", read],
      ["POST", write],
      ["PUT", write],
      ["DELETE", remove],
    ]),
  },
  lock: {
    path: `${TERRAFORM_STATE_PREFIX}{workspace}/lock`,
    ops: new Map([
      ["LOCK", lock],
      ["UNLOCK", unlock],
      ["POST", lock],
      ["DELETE", unlock],
    ]),
  },
} as const;

/** Every request the route answers, with the action it is authorised as (tests check each has a permission). */
export const TERRAFORM_HTTP_ROUTES: readonly { path: string; method: string; action: TerraformHttpAction }[] =
  Object.values(ROUTES).flatMap((r) =>
    [...r.ops].map(([method, op]) => ({ path: r.path, method, action: op.action })),
  );

/**
 * The Terraform/OpenTofu `http` backend (docs/terraform-http-backend.md) on the coordinator:
 * `/terraform/state/{workspace}` for the state and `/terraform/state/{workspace}/lock` for its lock.
 */
export function createTerraformHttpRoute(options: TerraformHttpRouteOptions): TerraformHttpRoute {
  const { coordinator, logger, maxStateSize, authorize, audit } = options;
  if (!Number.isSafeInteger(maxStateSize) || maxStateSize <= 0) {
    throw new InvalidArgumentError(`maxStateSize must be a positive integer, got ${String(maxStateSize)}`);
  }
  const lockWaitMs = options.lockWaitMs ?? DEFAULT_HTTP_LOCK_WAIT_MS;
  if (!Number.isFinite(lockWaitMs) || lockWaitMs < 0 || lockWaitMs > MAX_HTTP_LOCK_WAIT_MS) {
    throw new InvalidArgumentError(
      `lockWaitMs must be between 0 and ${MAX_HTTP_LOCK_WAIT_MS} ms, got ${String(options.lockWaitMs)}`,
    );
  }

  async function handle(req: HttpRequest, res: HttpResponse, ctx: RouteContext): Promise<void> {
    const started = performance.now();
    const method = req.method ?? "";
    const { signal } = ctx;
    let lockConflict: LockConflictStatus = 409;
    let workspace: string | undefined;
    let principal: RoutePrincipal | undefined;
    let grant: TerraformHttpGrant | undefined;
    let target: TerraformTarget | undefined;
    let op: Operation | undefined;
    let reply: Reply;
    let result = "ok";
    try {
      // First: a caller the server does not know learns nothing, not even whether a path exists.
      principal = await ctx.authenticate();
      target = parseTerraformTarget(req.url ?? "");
      workspace = target.workspace;
      const route = ROUTES[target.kind];
      op = route.ops.get(method);
      if (op === undefined) {
        const allow = [...route.ops.keys()].join(", ");
        reply = jsonReply(
          405,
          errorBody(`method ${JSON.stringify(method)} is not allowed on ${route.path}; allowed: ${allow}`),
          { allow },
        );
      } else {
        lockConflict = op.lockConflict;
        grant = await authorize?.(req, { workspace, action: op.action, principal });
        reply = await op.run({
          coordinator,
          logger,
          maxStateSize,
          lockWaitMs,
          req,
          workspace,
          query: target.query,
          signal,
        });
      }
    } catch (err) {
      const failure = errorReply(err, lockConflict, { hideLockId: grant?.showLockIds === false });
      const fields = { method, workspace, status: failure.status, err };
      if (failure.serverFault) logger.error("terraform http backend request failed", fields);
      else logger.debug("terraform http backend request refused", fields);
      reply = jsonReply(failure.status, failure.body, failure.headers);
      result = isTfstateError(err) ? err.code : "internal";
    }
    send(req, res, reply);
    if (audit) auditRequest(audit, req, { target, op, principal, reply, result });
    logger.debug("terraform http backend request", {
      method,
      workspace,
      principal: principal?.name,
      status: reply.status,
      ms: Math.round(performance.now() - started),
    });
  }

  return { prefix: TERRAFORM_STATE_PREFIX, handle };
}

const ANONYMOUS: RoutePrincipal = { method: "anonymous", name: "anonymous" };

/**
 * The audit record of a request that read or changed a state or its lock (src/audit): a request
 * refused before its operation was known (no credentials) is recorded for the operation its
 * method and path name; one that names no operation (a 405, an unknown path) read and changed
 * nothing, and is not recorded.
 */
function auditRequest(
  audit: AuditLog,
  req: HttpRequest,
  done: {
    target: TerraformTarget | undefined;
    op: Operation | undefined;
    principal: RoutePrincipal | undefined;
    reply: Reply;
    result: string;
  },
): void {
  const target = done.target ?? targetOf(req.url ?? "");
  if (target === undefined) return;
  const op = done.op ?? ROUTES[target.kind].ops.get(req.method ?? "");
  if (op === undefined || (op.action === "read" && !audit.sampleRead())) return;
  const facts = done.reply.facts;
  audit.record({
    requestId: requestIdFrom(req.headers[REQUEST_ID_HEADER]),
    principal: done.principal ?? ANONYMOUS,
    remoteAddress: req.socket?.remoteAddress,
    surface: "http",
    method: `${req.method} ${ROUTES[target.kind].path}`,
    workspace: target.workspace,
    version: facts?.version,
    digest: facts?.digest,
    // A write carries its lock as ?ID=; LOCK and UNLOCK in their body (known once it was read).
    lockId: facts?.lockId ?? (target.kind === "state" ? (target.query.get("ID") ?? undefined) : undefined),
    result: done.result,
  });
}

function targetOf(url: string): TerraformTarget | undefined {
  try {
    return parseTerraformTarget(url);
  } catch {
    return undefined;
  }
}
