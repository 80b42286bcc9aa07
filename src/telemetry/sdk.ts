/**
 * Starts the OpenTelemetry Node SDK when the operator asked for telemetry (any OTEL_* variable;
 * see Config.telemetry). The SDK reads its own standard variables (exporters, endpoints, headers,
 * sampling, resource attributes); spans and metrics come from the API calls in rpc and oci, so no
 * auto-instrumentation is loaded. Without telemetry the SDK is not even imported.
 */
import { DiagLogLevel, diag } from "@opentelemetry/api";
import type { Logger } from "../log.ts";

export interface Telemetry {
  /** Flushes and stops exporting; bounded so a dead collector cannot hold up the exit. */
  shutdown(): Promise<void>;
}

export interface TelemetryOptions {
  enabled: boolean;
  /** The process environment, for the default service name (the SDK reads the rest itself). */
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  /** service.name when OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES leave it unset. */
  serviceName?: string;
  shutdownTimeoutMs?: number;
}

const off: Telemetry = { shutdown: async () => {} };

export async function startTelemetry(opts: TelemetryOptions): Promise<Telemetry> {
  if (!opts.enabled) return off;
  const { logger, env } = opts;
  if (!env.OTEL_LOG_LEVEL) {
    // The SDK's own complaints (an unreachable collector, a bad exporter name) go to our log.
    diag.setLogger(
      {
        error: (message, ...args) => logger.warn(`opentelemetry: ${message}`, detail(args)),
        warn: (message, ...args) => logger.warn(`opentelemetry: ${message}`, detail(args)),
        info: () => {},
        debug: () => {},
        verbose: () => {},
      },
      DiagLogLevel.WARN,
    );
  }
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const named =
    Boolean(env.OTEL_SERVICE_NAME) || /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? "");
  const sdk = new NodeSDK({
    instrumentations: [],
    ...(named ? {} : { serviceName: opts.serviceName ?? "oci-tfstate" }),
  });
  sdk.start();
  logger.info("opentelemetry started", {
    traces: env.OTEL_TRACES_EXPORTER ?? "otlp",
    metrics: env.OTEL_METRICS_EXPORTER ?? "otlp",
    endpoint: withoutUserInfo(env.OTEL_EXPORTER_OTLP_ENDPOINT),
  });
  const timeoutMs = opts.shutdownTimeoutMs ?? 5000;
  return {
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      });
      try {
        const result = await Promise.race([sdk.shutdown().then(() => "done" as const), timeout]);
        if (result === "timeout") logger.warn("opentelemetry did not flush in time", { timeoutMs });
      } catch (err) {
        logger.warn("opentelemetry shutdown failed", { error: err });
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function detail(args: unknown[]): Record<string, unknown> | undefined {
  return args.length === 0 ? undefined : { detail: args.map((a) => (a instanceof Error ? a.message : a)) };
}

/** An endpoint URL fit for a log line: user info (a secret, if anyone put one there) removed. */
function withoutUserInfo(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined) return undefined;
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    return url.href;
  } catch {
    return "(not a URL)";
  }
}
