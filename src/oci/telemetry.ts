/**
 * One OpenTelemetry client span per HTTP request, named and attributed after the stable HTTP
 * semantic conventions, with the trace context injected into the request headers. Without an SDK
 * registered the API is a no-op and this costs next to nothing.
 */
import {
  context,
  type Histogram,
  type MeterProvider,
  metrics,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

const TRACER_NAME = "oci-tfstate/oci-remote";

export interface HttpSpan {
  /** Records the response status; 4xx and 5xx mark the span as an error. */
  response(status: number): void;
  /** Records a failure without a response (network error, abort). */
  fail(errorType: string, message: string): void;
  end(): void;
}

let durationProvider: MeterProvider | undefined;
let duration: Histogram | undefined;

/**
 * Registry request durations by method, host and status (`http.client.request.duration`). Made
 * from the provider registered now, so an SDK started after this module loaded is still used.
 */
function requestDuration(): Histogram {
  const provider = metrics.getMeterProvider();
  if (duration === undefined || provider !== durationProvider) {
    durationProvider = provider;
    duration = provider.getMeter(TRACER_NAME).createHistogram("http.client.request.duration", {
      description: "Duration of HTTP requests to registries, token services and the GitHub API",
      unit: "s",
    });
  }
  return duration;
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
  const started = performance.now();
  const attributes: Record<string, string | number> = {
    "http.request.method": method,
    "server.address": url.hostname,
    "server.port": port,
  };
  return {
    response(status) {
      attributes["http.response.status_code"] = status;
      if (status >= 400) attributes["error.type"] = String(status);
      span.setAttribute("http.response.status_code", status);
      if (status >= 400) {
        span.setAttribute("error.type", String(status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
    },
    fail(errorType, message) {
      attributes["error.type"] = errorType;
      span.setAttribute("error.type", errorType);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
    },
    end() {
      span.end();
      requestDuration().record((performance.now() - started) / 1000, attributes);
    },
  };
}
