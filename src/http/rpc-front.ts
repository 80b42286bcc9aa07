/**
 * The one way in for every RPC, whatever its protocol (Connect, gRPC, gRPC-Web), codec, HTTP
 * version or headers: route → authenticate → telemetry → deadline and abort → handler → error
 * mapping. All of it is Connect's: the router's handler for the method, with the server's request
 * gate (authentication) and interceptors (telemetry, errors), a deadline from the call's timeout
 * header, and the call's signal from the call registry. Two methods have a narrow body writer
 * plugged into that path (rpc/fast-methods.ts): GetState's handler is wrapped so that its state
 * buffer goes out as it is (state-body.ts), and WatchLock runs on Connect's pieces with a shared
 * frame writer instead of Connect's response pipeline (streaming-call.ts), on bare HTTP/2 streams
 * and on Node responses alike.
 *
 * On the way in, timeout headers are made fit for timers (request-timeout.ts), unary binary bodies
 * are checked before Connect decodes them (request-validation.ts), and a body's pending read fails
 * as soon as its call is aborted (abortable-body.ts).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { DescMethodServerStreaming } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Logger } from "../log.ts";
import { METHOD_TRAITS } from "../rpc/fast-methods.ts";
import type { ServedService } from "../rpc/routes.ts";
import { abortable, isByteStream, type ReadIdle } from "./abortable-body.ts";
import type { Call } from "./call-registry.ts";
import type { NodeRequest, NodeResponse } from "./listener.ts";
import { pathOf, requestHeaders } from "./request-parts.ts";
import { normalizeTimeoutHeaders } from "./request-timeout.ts";
import { validatingHandler } from "./request-validation.ts";
import { stateBodyHandler } from "./state-body.ts";
import { StreamResponse } from "./stream-response.ts";
import { type ResponseOpener, streamingCall } from "./streaming-call.ts";
import { FanOut } from "./watch-frames.ts";

export interface RpcFrontOptions
  extends Required<
    Pick<ConnectRouterOptions, "readMaxBytes" | "writeMaxBytes" | "acceptCompression" | "compressMinBytes">
  > {
  services: readonly ServedService[];
  /** The authentication point (and anything else to check before a request is read). */
  requestGate: (ctx: HandlerContext) => Promise<void>;
  /** Telemetry, then error mapping: every method runs inside them. */
  interceptors: Interceptor[];
  /** The values a call starts with (its peer's address, say). */
  contextValues: (remoteAddress: string | undefined) => ContextValues;
  logger: Logger;
}

/** One method's way in. */
interface Route {
  /** Connect's handler for the method, with the method's body writer when it has one. */
  handler: UniversalHandler;
  /** For methods whose frames the edge writes: serves them on any response. */
  stream: ReturnType<typeof streamingCall> | undefined;
  longLived: boolean;
  procedure: string;
}

export interface RpcFront {
  /** Whether `path` names an RPC, and whether its call is long-lived (ended at drain). */
  route(path: string): { longLived: boolean } | undefined;
  /** Whether a bare HTTP/2 stream for `path` is served by `serveStream` (no request/response objects). */
  takesStream(path: string): boolean;
  /** Serves an RPC request; resolves once the response is done. `idle`: the body idle timeout. */
  serve(req: NodeRequest, res: NodeResponse, call: Call, idle: ReadIdle): Promise<void>;
  /**
   * Serves an RPC on a bare HTTP/2 stream (see takesStream); resolves once the stream's response is
   * done. `responseHeaders`: the edge's own (request ID, CORS), added to the call's.
   */
  serveStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    call: Call,
    idle: ReadIdle,
    responseHeaders?: Headers,
  ): Promise<void>;
}

export function createRpcFront(opts: RpcFrontOptions): RpcFront {
  const { services, requestGate, interceptors, contextValues, logger, ...limits } = opts;
  const router = createConnectRouter({ ...limits, interceptors, requestGate });
  const specs = new Map<string, MethodImplSpec>();
  for (const { service, impl } of services) {
    router.service(service, impl);
    const spec = createServiceImplSpec(service, impl);
    for (const m of Object.values(spec.methods)) specs.set(`/${service.typeName}/${m.method.name}`, m);
  }
  const fanOut = new FanOut();
  const validation = { compressions: limits.acceptCompression, readMaxBytes: limits.readMaxBytes };
  const routes = new Map<string, Route>();
  for (const h of router.handlers) {
    const traits = METHOD_TRAITS.get(h.method) ?? {};
    const spec = specs.get(h.requestPath);
    let handler = validatingHandler(h, validation);
    if (traits.body === "state-buffer")
      handler = stateBodyHandler(handler, {
        compressions: limits.acceptCompression,
        compressMinBytes: limits.compressMinBytes,
      });
    const stream =
      traits.body === "watch-frames" && spec?.kind === "server_streaming"
        ? streamingCall(
            spec as MethodImplSpec & { kind: "server_streaming"; method: DescMethodServerStreaming },
            {
              interceptors,
              requestGate,
              acceptCompression: limits.acceptCompression,
              readMaxBytes: limits.readMaxBytes,
              writeMaxBytes: limits.writeMaxBytes,
              fanOut,
              logger,
            },
          )
        : undefined;
    routes.set(h.requestPath, {
      handler,
      stream,
      longLived: traits.longLived === true,
      procedure: `${h.service.typeName}/${h.method.name}`,
    });
  }

  /** Runs one call on its route; resolves once it is answered. A failure ends that call only. */
  const run = (
    route: Route,
    req: UniversalServerRequest,
    idle: ReadIdle,
    open: ResponseOpener,
    node?: NodeResponse,
  ) => {
    normalizeTimeoutHeaders(req.header);
    const body = isByteStream(req.body) ? abortable(req.body, req.signal, idle) : req.body;
    const uReq: UniversalServerRequest = { ...req, body };
    const failed = (err: unknown) => {
      // The client went away or reset the stream: nothing left to answer.
      if (ConnectError.from(err).code !== Code.Aborted) {
        logger.error("RPC failed", { rpc: route.procedure, error: err });
      }
      if (node !== undefined && !node.writableEnded) node.destroy();
    };
    // Not an async function: a WatchLock call lasts as long as its client watches, and nothing
    // should stay suspended for it meanwhile.
    const running =
      route.stream !== undefined
        ? route.stream(uReq, open).then((refused) => {
            if (refused !== undefined) open("connect", new Headers()).refuse(refused);
          }, failed)
        : node === undefined
          ? Promise.resolve()
          : route
              .handler(uReq)
              .then((res) => universalResponseToNodeResponse(res, node))
              .catch(failed);
    return running;
  };

  return {
    route(path) {
      const route = routes.get(path);
      return route === undefined ? undefined : { longLived: route.longLived };
    },

    takesStream(path) {
      return routes.get(path)?.stream !== undefined;
    },

    async serve(req, res, call, idle) {
      const route = routes.get(pathOf(req.url));
      if (route === undefined) {
        res.statusCode = 404;
        res.end();
        return;
      }
      let uReq: UniversalServerRequest;
      try {
        uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues(req.socket?.remoteAddress));
      } catch {
        // Its only failure: the request names no authority (an HTTP/1.0 request without Host).
        res.statusCode = 400;
        res.setHeader("content-type", "text/plain; charset=utf-8");
        res.end("the request names no host: send a Host header (or :authority in HTTP/2)\n");
        return;
      }
      const open: ResponseOpener = (protocol, header) => StreamResponse.onResponse(res, protocol, header);
      return run(route, { ...uReq, signal: call.signal }, idle, open, res);
    },

    async serveStream(stream, headers, call, idle, responseHeaders) {
      const route = routes.get(pathOf(headers[":path"]));
      if (route === undefined) return;
      const authority = headers[":authority"] ?? headers.host;
      if (authority === undefined) {
        stream.respond({ ":status": 400, "content-type": "text/plain; charset=utf-8" });
        stream.end("the request names no host: send :authority\n");
        return;
      }
      const req: UniversalServerRequest = {
        httpVersion: "2.0",
        method: String(headers[":method"] ?? ""),
        url: `${headers[":scheme"] ?? "http"}://${authority}${headers[":path"] ?? "/"}`,
        header: requestHeaders(headers),
        // A reader that stops early (a refused request) must not reset the stream before the answer.
        body: stream.iterator({ destroyOnReturn: false }),
        signal: call.signal,
        contextValues: contextValues(stream.session?.socket?.remoteAddress),
      };
      return run(route, req, idle, (protocol, header) => {
        responseHeaders?.forEach((value, name) => {
          header.set(name, value);
        });
        return StreamResponse.onStream(stream, protocol, header);
      });
    },
  };
}
