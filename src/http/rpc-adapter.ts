/**
 * The Node request handler for the RPC services, in place of connect-node's connectNodeAdapter
 * (same routing and request/response conversion), to cut every running call off at the end of the
 * shutdown grace period. connectNodeAdapter's way is one `shutdownSignal` shared by all calls, on
 * which each call adds and later removes a listener; an AbortSignal's listeners are a list searched
 * on every add and remove, so with thousands of long-lived streams, opening one cost time in
 * proportion to those open. Here each call has its own signal, and the calls in progress are a set
 * the cut-off walks once.
 */
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Logger } from "../log.ts";
import type { NodeRequest, NodeResponse } from "./listener.ts";
import { pathOf } from "./request-parts.ts";

export interface RpcAdapterOptions extends Omit<ConnectRouterOptions, "shutdownSignal"> {
  routes: (router: ConnectRouter) => void;
  contextValues: (req: NodeRequest) => ContextValues;
  logger: Logger;
}

export interface RpcAdapter {
  /** Serves one request whose path names an RPC; other paths get 404. */
  handle(req: NodeRequest, res: NodeResponse): void;
  /** Aborts every call in progress, and every later one, with `reason` as their signal's reason. */
  cutOff(reason: ConnectError): void;
}

export function createRpcAdapter(opts: RpcAdapterOptions): RpcAdapter {
  const { routes, contextValues, logger, ...routerOptions } = opts;
  const router = createConnectRouter(routerOptions);
  routes(router);
  const handlers = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  const running = new Set<AbortController>();
  let cutOffReason: ConnectError | undefined;

  const serve = async (handler: UniversalHandler, nodeReq: UniversalServerRequest, res: NodeResponse) => {
    const call = new AbortController();
    const requestSignal = nodeReq.signal;
    const onRequestAbort = () => call.abort(requestSignal.reason);
    requestSignal.addEventListener("abort", onRequestAbort, { once: true });
    if (cutOffReason !== undefined) call.abort(cutOffReason);
    running.add(call);
    const uReq: UniversalServerRequest = { ...nodeReq, signal: call.signal };
    try {
      await universalResponseToNodeResponse(await handler(uReq), res);
    } catch (err) {
      // The client went away or reset the stream: nothing left to answer.
      if (ConnectError.from(err).code !== Code.Aborted) {
        logger.error("RPC handler failed", {
          rpc: `${handler.service.typeName}/${handler.method.name}`,
          error: err,
        });
      }
      if (!res.writableEnded) res.destroy();
    } finally {
      running.delete(call);
      requestSignal.removeEventListener("abort", onRequestAbort);
    }
  };

  return {
    handle(req, res) {
      const handler = handlers.get(pathOf(req.url));
      if (handler === undefined) {
        res.statusCode = 404;
        res.end();
        return;
      }
      // Throws (before anything is answered) on a request without an authority.
      const nodeReq = universalRequestFromNodeRequest(req, res, undefined, contextValues(req));
      void serve(handler, nodeReq, res);
    },
    cutOff(reason) {
      cutOffReason ??= reason;
      for (const call of running) call.abort(reason);
    },
  };
}
