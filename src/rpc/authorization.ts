/**
 * The policy's check for every RPC, in one interceptor (method-access.ts says what each method
 * needs): a workspace the caller may not see does not exist for it (NOT_FOUND, whether or not it
 * exists, so names do not leak); one it sees without the permission the method needs is
 * PERMISSION_DENIED naming both. The caller's Access goes into the call's values, for the handlers
 * that list several workspaces or show lock holders (view.ts). A lock's ID is the key to its
 * workspace's writes, so an error naming a holder shows it only to callers with `lock` there.
 */
import { clone, create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { LockHeldDetailSchema } from "../gen/tfstate/v1/error_details_pb.ts";
import { LockInfoSchema } from "../gen/tfstate/v1/lock_pb.ts";
import { followingAccess, type PolicySource, type WorkspaceAccess } from "../policy/policy.ts";
import { METHOD_ACCESS, type MethodAccess } from "./method-access.ts";
import { principalKey } from "./principal.ts";

export const accessKey = createContextKey<WorkspaceAccess | undefined>(undefined, {
  description: "what the caller may do, by workspace",
});

/** The answer for a workspace the caller may not see: the same as for one that does not exist. */
export function notVisible(workspace: string): ConnectError {
  return new ConnectError(`workspace ${JSON.stringify(workspace)} does not exist`, Code.NotFound);
}

function check(
  access: WorkspaceAccess,
  rule: MethodAccess & { kind: "workspace" },
  message: unknown,
): string | undefined {
  const ws = rule.workspace(message);
  if (ws === undefined) return undefined;
  if (!access.visible(ws)) throw notVisible(ws);
  const need = rule.need(message);
  if (need !== "visible" && !access.can(need, ws)) {
    throw new ConnectError(
      `${access.principal.name} lacks the ${need} permission on workspace ${JSON.stringify(ws)}`,
      Code.PermissionDenied,
    );
  }
  return ws;
}

export function authorizationInterceptor(policy: PolicySource): Interceptor {
  return (next) => async (req) => {
    const rule = METHOD_ACCESS.get(req.method);
    if (rule === undefined) {
      // Fails closed: a method added without an access rule serves nobody.
      throw new ConnectError(`${req.method.name} has no access rule`, Code.Unimplemented);
    }
    if (rule.kind === "public") return next(req);
    const principal = req.contextValues.get(principalKey);
    // A stream may outlive a policy reload: what it shows follows the policy in force.
    const access = req.stream ? followingAccess(policy, principal) : policy.current.accessFor(principal);
    req.contextValues.set(accessKey, access);
    if (rule.kind === "authenticated") return next(req);
    if (!req.stream) {
      const ws = check(access, rule, req.message);
      try {
        return await next(req);
      } catch (err) {
        throw ws === undefined ? err : hideLockId(err, access, ws);
      }
    }
    let ws: string | undefined;
    const checked = checkFirst(req.message, (m) => {
      ws = check(access, rule, m);
    });
    const res = await next({ ...req, message: checked });
    if (!res.stream || ws === undefined || access.can("lock", ws)) return res;
    return { ...res, message: mapErrors(res.message, (err) => hideLockId(err, access, ws as string)) };
  };
}

/** The request messages, the first one checked before it reaches the handler. */
async function* checkFirst<T>(source: AsyncIterable<T>, checkIt: (m: T) => void): AsyncGenerator<T> {
  let first = true;
  for await (const m of source) {
    if (first) {
      checkIt(m);
      first = false;
    }
    yield m;
  }
}

function mapErrors<T>(source: AsyncIterable<T>, map: (err: unknown) => unknown): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: () =>
          it.next().catch((err: unknown) => {
            throw map(err);
          }),
        return: (value?: unknown) =>
          it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
}

/** A lock-held error as a caller without `lock` on the workspace sees it: the holder's ID hidden. */
function hideLockId(err: unknown, access: WorkspaceAccess, ws: string): unknown {
  if (!(err instanceof ConnectError) || access.can("lock", ws)) return err;
  const held = err.findDetails(LockHeldDetailSchema)[0];
  const id = held?.holder?.id ?? "";
  if (held === undefined || id === "") return err;
  const detail = create(LockHeldDetailSchema, {
    generation: held.generation,
    ...(held.expireTime !== undefined ? { expireTime: held.expireTime } : {}),
    ...(held.holder !== undefined ? { holder: { ...clone(LockInfoSchema, held.holder), id: "" } } : {}),
  });
  return new ConnectError(
    err.rawMessage.replaceAll(id, "(hidden)"),
    err.code,
    err.metadata,
    [{ desc: LockHeldDetailSchema, value: detail }],
    err.cause,
  );
}
