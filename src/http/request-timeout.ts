/**
 * A call's timeout as it comes in (`grpc-timeout` for gRPC and gRPC-Web, `connect-timeout-ms` for
 * Connect), made fit for timers once, here where it enters. gRPC's units go down to nanoseconds
 * (grpc-go sends a 10 s context deadline as "9999958u"), so the milliseconds Connect's parser
 * gives can be fractional, and AbortSignal.timeout, which every registry request's deadline
 * becomes, refuses those. Its units go up to 99,999,999 hours, past what Node's timers take: a
 * longer delay fires at once. So a timeout is rounded up to whole milliseconds, and one beyond the
 * longest timer is dropped: the client enforces it anyway, and no call here lasts that long.
 */
import type { ConnectError } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";

/** The longest delay Node's timers take: 2^31 - 1 ms, about 24.8 days. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** gRPC's timeout value has at most 8 digits. */
const MAX_GRPC_TIMEOUT_DIGITS = 99_999_999;

export type TimeoutHeader = "grpc-timeout" | "connect-timeout-ms";

export interface RequestTimeout {
  /** Whole milliseconds; undefined when the request sets none (or one beyond MAX_TIMEOUT_MS). */
  timeoutMs?: number | undefined;
  /** The header is malformed: the error to answer with, as Connect's handlers word it. */
  error?: ConnectError | undefined;
}

/** The timeout a request's `header` (its raw value, or null) sets. */
export function requestTimeout(header: TimeoutHeader, value: string | null): RequestTimeout {
  const parse = header === "grpc-timeout" ? parseGrpcTimeout : parseConnectTimeout;
  const parsed = parse(value, Number.POSITIVE_INFINITY);
  if (parsed.error !== undefined || parsed.timeoutMs === undefined) return parsed;
  const ms = Math.ceil(parsed.timeoutMs);
  return ms > MAX_TIMEOUT_MS ? {} : { timeoutMs: ms };
}

/**
 * Rewrites the timeout headers of a request for Connect's handlers, which parse them themselves:
 * in whole milliseconds (see requestTimeout), or gone when beyond the longest timer. A malformed
 * one is left for Connect to refuse.
 */
export function normalizeTimeoutHeaders(headers: Headers): void {
  for (const name of ["grpc-timeout", "connect-timeout-ms"] as const) {
    const value = headers.get(name);
    if (value === null) continue;
    const { timeoutMs, error } = requestTimeout(name, value);
    if (error !== undefined) continue;
    if (timeoutMs === undefined) headers.delete(name);
    else headers.set(name, name === "grpc-timeout" ? grpcTimeout(timeoutMs) : String(timeoutMs));
  }
}

/** In milliseconds while 8 digits hold them, else in whole seconds (down: never past the longest timer). */
function grpcTimeout(ms: number): string {
  return ms <= MAX_GRPC_TIMEOUT_DIGITS ? `${ms}m` : `${Math.floor(ms / 1000)}S`;
}
