/**
 * The Node request handler for the RPC services, in place of connect-node's connectNodeAdapter
 * (same routing and request/response conversion), to cut every running call off at the end of the
 * shutdown grace period. connectNodeAdapter's way is one `shutdownSignal` shared by all calls, on
 * which each call adds and later removes a listener; an AbortSignal's listeners are a list searched
 * on every add and remove, so with thousands of long-lived streams, opening one cost time in
 * proportion to those open. Here each call has its own signal, and the calls in progress are a set
 * the cut-off walks once.
 *
 * On the way in, each request gets its timeout headers made fit for timers (request-timeout.ts),
 * its unary binary body checked before Connect decodes it (request-validation.ts), and a body whose
 * pending read fails as soon as the call is aborted: Connect's own read of a request body does not
 * watch the call's signal, so a call cut off (or whose body stalled) would otherwise wait on it.
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
import { toConnectError } from "../rpc/errors.ts";
import type { NodeRequest, NodeResponse } from "./listener.ts";
import { pathOf } from "./request-parts.ts";
import { normalizeTimeoutHeaders } from "./request-timeout.ts";
import { validatingHandler } from "./request-validation.ts";

export interface RpcAdapterOptions extends Omit<ConnectRouterOptions, "shutdownSignal"> {
  routes: (router: ConnectRouter) => void;
  contextValues: (req: NodeRequest) => ContextValues;
  logger: Logger;
}

export interface RpcAdapter {
  /**
   * Serves one request whose path names an RPC; other paths get 404. `stalled` aborts when the
   * request's body stalls: the call ends with its reason. Resolves once the response is done.
   */
  handle(req: NodeRequest, res: NodeResponse, stalled?: AbortSignal): Promise<void>;
  /** Aborts every call in progress, and every later one, with `reason` as their signal's reason. */
  cutOff(reason: ConnectError): void;
}

export function createRpcAdapter(opts: RpcAdapterOptions): RpcAdapter {
  const { routes, contextValues, logger, ...routerOptions } = opts;
  const router = createConnectRouter(routerOptions);
  routes(router);
  const validation = {
    compressions: routerOptions.acceptCompression ?? [],
    readMaxBytes: routerOptions.readMaxBytes ?? Number.MAX_SAFE_INTEGER,
  };
  const handlers = new Map<string, UniversalHandler>(
    router.handlers.map((h) => [h.requestPath, validatingHandler(h, validation)]),
  );
  const running = new Set<AbortController>();
  let cutOffReason: ConnectError | undefined;

  const serve = async (
    handler: UniversalHandler,
    nodeReq: UniversalServerRequest,
    res: NodeResponse,
    stalled: AbortSignal | undefined,
  ) => {
    const call = new AbortController();
    const requestSignal = nodeReq.signal;
    const onRequestAbort = () => call.abort(requestSignal.reason);
    requestSignal.addEventListener("abort", onRequestAbort, { once: true });
    const onStalled = () => call.abort(toConnectError(stalled?.reason));
    stalled?.addEventListener("abort", onStalled, { once: true });
    if (cutOffReason !== undefined) call.abort(cutOffReason);
    running.add(call);
    normalizeTimeoutHeaders(nodeReq.header);
    const body = isByteStream(nodeReq.body) ? abortable(nodeReq.body, call.signal) : nodeReq.body;
    const uReq: UniversalServerRequest = { ...nodeReq, body, signal: call.signal };
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
      stalled?.removeEventListener("abort", onStalled);
    }
  };

  return {
    async handle(req, res, stalled) {
      const handler = handlers.get(pathOf(req.url));
      if (handler === undefined) {
        res.statusCode = 404;
        res.end();
        return;
      }
      let nodeReq: UniversalServerRequest;
      try {
        nodeReq = universalRequestFromNodeRequest(req, res, undefined, contextValues(req));
      } catch {
        // Its only failure: the request names no authority (an HTTP/1.0 request without Host).
        const body = "the request names no host: send a Host header (or :authority in HTTP/2)\n";
        res.statusCode = 400;
        res.setHeader("content-type", "text/plain; charset=utf-8");
        res.end(body);
        return;
      }
      await serve(handler, nodeReq, res, stalled);
    },
    cutOff(reason) {
      cutOffReason ??= reason;
      for (const call of running) call.abort(reason);
    },
  };
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/**
 * `body`, whose pending read fails with the signal's reason once `signal` aborts. The listener is
 * added per read and removed when it settles, so a long upload keeps nothing per chunk.
 */
function abortable(body: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      return {
        next: () =>
          new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
            if (signal.aborted) {
              reject(ConnectError.from(signal.reason));
              return;
            }
            const onAbort = () => reject(ConnectError.from(signal.reason));
            signal.addEventListener("abort", onAbort, { once: true });
            it.next().then(
              (r) => {
                signal.removeEventListener("abort", onAbort);
                resolve(r);
              },
              (err: unknown) => {
                signal.removeEventListener("abort", onAbort);
                reject(err);
              },
            );
          }),
        return: async (value?: unknown) => {
          void it.return?.(value).catch(() => {});
          return { done: true, value: undefined };
        },
      };
    },
  };
}
