/**
 * One operation's cancellation scope: the caller's signal and absolute deadline folded into a single
 * AbortSignal that every HTTP request, rate-limit wait and retry sleep of that operation listens to.
 */
import { CanceledError, DeadlineExceededError, type TfstateError } from "../errors.ts";
import type { CallOptions } from "./target.ts";

const MAX_TIMER_MS = 2 ** 31 - 1;

export class CallContext {
  readonly signal: AbortSignal;
  readonly deadline: number | undefined;
  /** Names the operation in errors, e.g. `GET manifest "latest" from ghcr.io/org/repo`. */
  readonly what: string;
  private readonly callerSignal: AbortSignal | undefined;

  constructor(opts: CallOptions | undefined, what: string) {
    this.what = what;
    this.callerSignal = opts?.signal ?? undefined;
    this.deadline = opts?.deadline ?? undefined;
    const signals: AbortSignal[] = [];
    if (this.callerSignal !== undefined) signals.push(this.callerSignal);
    const left = this.remainingMs();
    // A timer longer than Node's longest (about 24.8 days) would fire at once; such a deadline is no limit.
    if (left <= MAX_TIMER_MS) {
      // AbortSignal.timeout does not keep the process alive and needs no clean-up; it takes whole ms.
      signals.push(AbortSignal.timeout(Math.max(0, Math.ceil(left))));
    }
    this.signal = signals.length === 0 ? new AbortController().signal : AbortSignal.any(signals);
  }

  /** Milliseconds left before the deadline (Infinity without one). */
  remainingMs(): number {
    return this.deadline === undefined ? Number.POSITIVE_INFINITY : this.deadline - Date.now();
  }

  get done(): boolean {
    return this.signal.aborted || this.remainingMs() <= 0;
  }

  /** Throws CanceledError or DeadlineExceededError once the operation may no longer run. */
  check(): void {
    if (this.done) throw this.abortError();
  }

  /** The error for an operation cut short by the caller's signal or by the deadline. */
  abortError(detail?: string): TfstateError {
    const suffix = detail ? ` (${detail})` : "";
    // A caller's signal that fires once the deadline has passed is the deadline, whatever raced.
    if (this.callerSignal?.aborted && this.remainingMs() > 0) {
      const reason = this.callerSignal.reason;
      return new CanceledError(`${this.what}: canceled by the caller${suffix}`, { cause: reason });
    }
    return new DeadlineExceededError(`${this.what}: deadline exceeded${suffix}`);
  }
}

/** Sleeps `ms`, waking early (with the context's abort error) when the operation is canceled. */
export function sleep(ms: number, call: CallContext): Promise<void> {
  if (call.done) return Promise.reject(call.abortError());
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(call.abortError());
    };
    const timer = setTimeout(() => {
      call.signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    call.signal.addEventListener("abort", onAbort, { once: true });
  });
}
