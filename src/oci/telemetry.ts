/**
 * One OpenTelemetry client span per HTTP request, named and attributed after the stable HTTP
 * semantic conventions, with the trace context injected into the request headers. Without an SDK
 * registered the API is a no-op and this costs next to nothing.
 */
import { context, propagation, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";

const TRACER_NAME = "oci-tfstate/oci-remote";

export interface HttpSpan {
  /** Records the response status; 4xx and 5xx mark the span as an error. */
  response(status: number): void;
  /** Records a failure without a response (network error, abort). */
  fail(errorType: string, message: string): void;
  end(): void;
}

/** A URL safe for telemetry: no user info (our URLs never carry any, but a Location header might). */
export function safeUrl(url: URL): string {
  if (url.username === "" && url.password === "") return url.href;
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  return copy.href;
}

/** Starts the span and writes the trace context (traceparent, ...) into `headers`. */
export function startHttpSpan(method: string, url: URL, headers: Record<string, string>): HttpSpan {
  const tracer = trace.getTracer(TRACER_NAME);
  const port = url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  const span: Span = tracer.startSpan(`HTTP ${method}`, {
    kind: SpanKind.CLIENT,
    attributes: {
      "http.request.method": method,
      "server.address": url.hostname,
      "server.port": port,
      "url.full": safeUrl(url),
    },
  });
  propagation.inject(trace.setSpan(context.active(), span), headers);
  return {
    response(status) {
      span.setAttribute("http.response.status_code", status);
      if (status >= 400) {
        span.setAttribute("error.type", String(status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
    },
    fail(errorType, message) {
      span.setAttribute("error.type", errorType);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
    },
    end() {
      span.end();
    },
  };
}
