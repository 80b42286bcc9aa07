/**
 * One OpenTelemetry server span per RPC (continuing the caller's trace from `traceparent`), with the
 * registry requests made while serving it as child spans, and the RPC's duration recorded in a
 * histogram. Named and attributed after the RPC semantic conventions. Without a registered SDK the
 * API is a no-op, so this costs next to nothing when telemetry is off.
 */

import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  type Context,
  context,
  metrics,
  propagation,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";

const INSTRUMENTATION = "oci-tfstate/rpc";

/** Server-side codes that mean the server failed, per the gRPC semantic conventions. */
const SERVER_ERRORS = new Set<Code>([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

const headerGetter: TextMapGetter<Headers> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  keys: (carrier) => [...carrier.keys()],
};

/** "grpc" for gRPC and gRPC-Web (same status model), "connect_rpc" for the Connect protocol. */
function rpcSystem(contentType: string | null): "grpc" | "connect_rpc" {
  return contentType?.startsWith("application/grpc") ? "grpc" : "connect_rpc";
}

/** One RPC's span and clock. */
export interface RpcCall {
  /** The trace context with the call's span, for the work done on its behalf. */
  readonly context: Context;
  /** Ends the span and records the duration, with the call's error (undefined: success); once. */
  finish(err: unknown): void;
}

/** Starts calls' spans and records their durations; one per server, shared by every way in. */
export interface RpcTelemetry {
  start(service: string, method: string, requestHeader: Headers): RpcCall;
}

export function rpcTelemetry(): RpcTelemetry {
  const tracer = trace.getTracer(INSTRUMENTATION);
  const duration = metrics.getMeter(INSTRUMENTATION).createHistogram("rpc.server.call.duration", {
    description: "Duration of RPCs handled by the server, streams included (until their last message)",
    unit: "s",
    advice: {
      explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    },
  });

  return {
    start(service, method, requestHeader) {
      const system = rpcSystem(requestHeader.get("content-type"));
      const attributes = { "rpc.system": system, "rpc.service": service, "rpc.method": method };
      const parent = propagation.extract(context.active(), requestHeader, headerGetter);
      const span = tracer.startSpan(`${service}/${method}`, { kind: SpanKind.SERVER, attributes }, parent);
      const started = performance.now();
      let finished = false;
      return {
        context: trace.setSpan(parent, span),
        finish(err) {
          if (finished) return;
          finished = true;
          const code = err === undefined ? undefined : ConnectError.from(err).code;
          const status =
            system === "grpc"
              ? { "rpc.grpc.status_code": code ?? 0 }
              : code === undefined
                ? {}
                : { "rpc.connect_rpc.error_code": Code[code] ?? String(code) };
          span.setAttributes(status);
          if (code !== undefined && SERVER_ERRORS.has(code)) {
            span.setStatus({ code: SpanStatusCode.ERROR, message: ConnectError.from(err).rawMessage });
          }
          span.end();
          duration.record((performance.now() - started) / 1000, { ...attributes, ...status });
        },
      };
    },
  };
}

export function telemetryInterceptor(telemetry: RpcTelemetry): Interceptor {
  return (next) => async (req) => {
    const call = telemetry.start(req.service.typeName, req.method.name, req.header);
    const finish = (err: unknown) => call.finish(err);
    try {
      // No closure over `req`: a stream's span outlives this call, and with it what closures here keep.
      const res = await context.with(call.context, next, undefined, req);
      if (!res.stream) {
        finish(undefined);
        return res;
      }
      return { ...res, message: traced(res.message, call.context, finish) };
    } catch (err) {
      finish(err);
      throw err;
    }
  };
}

/**
 * A response stream whose production runs inside the RPC's span (a streaming handler's body runs
 * only as the stream is read, after the interceptor returned), ending the span with the stream.
 * A plain iterator rather than an async generator: it sits on every message of every stream, and a
 * generator stage costs extra promise hops per message and memory per open stream.
 */
function traced<T>(
  source: AsyncIterable<T>,
  active: Context,
  finish: (err: unknown) => void,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = source[Symbol.asyncIterator]();
      const fail = (err: unknown): never => {
        finish(err);
        throw err;
      };
      return {
        next: () =>
          context
            .with(active, () => it.next())
            .then((r) => {
              if (r.done) finish(undefined);
              return r;
            }, fail),
        // Stopped early by the reader (the client went away): let the source clean up.
        async return(value?: unknown) {
          await context.with(active, async () => it.return?.(value)).catch(() => {});
          finish(undefined);
          return { done: true, value: undefined };
        },
        // The reader failed (a write error): the source learns of it through the call's signal.
        async throw(err?: unknown) {
          return fail(err);
        },
      };
    },
  };
}
