/**
 * The one retry layer of the remote client. A unit of work (one HTTP exchange, or a whole in-memory
 * blob upload) signals a transient failure by throwing TransientError; `withRetry` waits with
 * exponential backoff and equal jitter (or the server's Retry-After) and runs the unit again, within
 * the attempt budget and the caller's deadline. Nothing inside a unit retries on its own.
 */
import { DeadlineExceededError, InvalidArgumentError, UnavailableError } from "../errors.ts";
import { type CallContext, sleep } from "./call-context.ts";

export interface RetryOptions {
  /** Total attempts, the first included (1 = no retries). */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
}

export const DEFAULT_RETRY: RetryOptions = {
  maxAttempts: 3,
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  multiplier: 2,
};

export function resolveRetryOptions(partial: Partial<RetryOptions> | undefined): RetryOptions {
  const r = { ...DEFAULT_RETRY, ...stripUndefined(partial ?? {}) };
  const positive = (name: string, v: number, min: number) => {
    if (!Number.isFinite(v) || v < min) {
      throw new InvalidArgumentError(`retry.${name} must be a number >= ${min}, got ${v}`);
    }
  };
  positive("maxAttempts", r.maxAttempts, 1);
  positive("initialBackoffMs", r.initialBackoffMs, 0);
  positive("maxBackoffMs", r.maxBackoffMs, 0);
  positive("multiplier", r.multiplier, 1);
  return {
    maxAttempts: Math.floor(r.maxAttempts),
    initialBackoffMs: r.initialBackoffMs,
    maxBackoffMs: Math.max(r.maxBackoffMs, r.initialBackoffMs),
    multiplier: r.multiplier,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A failure worth trying again (408/429/5xx, a reset connection). It is an UnavailableError, so should
 * one ever escape a retry loop it still reads as "the registry is unavailable".
 */
export class TransientError extends UnavailableError {
  /** Registry host (and port) the failure came from. */
  readonly host: string;
  /** Short description of the failure, e.g. "status 503" or "ECONNRESET". */
  readonly reason: string;
  /** Server-requested wait (Retry-After), ms. */
  readonly retryAfterMs: number | undefined;

  constructor(init: {
    host: string;
    reason: string;
    message: string;
    retryAfterMs?: number | undefined;
    cause?: unknown;
  }) {
    super(init.message, { cause: init.cause });
    this.host = init.host;
    this.reason = init.reason;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** HTTP statuses retried for every method; 500 is retried for reads only (a write may have happened). */
const RETRYABLE_STATUSES = new Set([408, 429, 502, 503, 504]);

export function isRetryableStatus(status: number, method: string): boolean {
  if (RETRYABLE_STATUSES.has(status)) return true;
  return status === 500 && (method === "GET" || method === "HEAD");
}

/** `Retry-After` as delta-seconds or an HTTP date, in ms from `now`; undefined when absent or unusable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Wait before attempt `retry + 1` (retry counts from 1): exponential, capped, with equal jitter so
 * that clients retrying together spread out but never retry at once.
 */
export function backoffMs(retry: number, opts: RetryOptions, random: () => number = Math.random): number {
  const base = Math.min(opts.maxBackoffMs, opts.initialBackoffMs * opts.multiplier ** (retry - 1));
  return base / 2 + random() * (base / 2);
}

export interface RetryHooks {
  /** Called before each wait; for logging. */
  onRetry?: (info: { attempt: number; waitMs: number; error: TransientError }) => void;
}

/**
 * Runs `unit` until it succeeds, fails with a non-transient error, runs out of attempts (then an
 * UnavailableError naming the host and the last failure), or the context ends (CanceledError or
 * DeadlineExceededError).
 */
export async function withRetry<T>(
  unit: (attempt: number) => Promise<T>,
  opts: RetryOptions,
  call: CallContext,
  hooks: RetryHooks = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    call.check();
    try {
      return await unit(attempt);
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      if (call.done) throw call.abortError(`last failure: ${err.reason}`);
      if (attempt >= opts.maxAttempts) {
        throw new UnavailableError(
          `${call.what}: registry ${err.host} still failing after ${attempt} attempt${attempt === 1 ? "" : "s"} ` +
            `(last: ${err.reason})`,
          { cause: err.cause ?? err },
        );
      }
      const backoff = backoffMs(attempt, opts);
      // Retry-After is the server's own estimate; honour it over our backoff, within our cap.
      const waitMs = Math.min(opts.maxBackoffMs, err.retryAfterMs ?? backoff);
      if (waitMs >= call.remainingMs()) {
        throw new DeadlineExceededError(
          `${call.what}: deadline would pass before the next attempt (last: ${err.reason} from ${err.host})`,
          { cause: err.cause ?? err },
        );
      }
      hooks.onRetry?.({ attempt, waitMs, error: err });
      await sleep(waitMs, call);
    }
  }
}
