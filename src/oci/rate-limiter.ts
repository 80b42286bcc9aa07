/**
 * Token bucket in front of every HTTP request a target makes (registry, token service, GitHub API):
 * `rate` tokens per second, at most `burst` saved up. Waiters are served in arrival order.
 */
import { InvalidArgumentError } from "../errors.ts";
import { type CallContext, sleep } from "./call-context.ts";

export class RateLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;
  /** Tail of the FIFO of waiters, so a late caller cannot overtake one already sleeping. */
  private queue: Promise<void> = Promise.resolve();

  constructor(rate: number, burst: number, now: () => number = performance.now.bind(performance)) {
    if (!Number.isFinite(rate) || rate <= 0) {
      throw new InvalidArgumentError(
        `rateLimit must be a positive number of requests per second, got ${rate}`,
      );
    }
    if (!Number.isFinite(burst) || burst < 0) {
      throw new InvalidArgumentError(`rateBurst must be a number >= 0, got ${burst}`);
    }
    this.rate = rate;
    this.burst = Math.max(1, Math.floor(burst));
    this.tokens = this.burst;
    this.now = now;
    this.last = now();
  }

  /** Waits for a token; rejects with the context's error when the operation is canceled meanwhile. */
  take(call: CallContext): Promise<void> {
    const turn = this.queue.then(() => this.acquire(call));
    // The next waiter queues behind this one whether it gets its token or gives up.
    this.queue = turn.catch(() => {});
    return turn;
  }

  private async acquire(call: CallContext): Promise<void> {
    for (;;) {
      call.check();
      const now = this.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.ceil(((1 - this.tokens) / this.rate) * 1000), call);
    }
  }
}

/** Builds the limiter for the target options; undefined when rate limiting is off (rate 0 or unset). */
export function createRateLimiter(
  rate: number | undefined,
  burst: number | undefined,
): RateLimiter | undefined {
  if (rate === undefined || rate === 0) return undefined;
  if (rate < 0) throw new InvalidArgumentError(`rateLimit must be >= 0, got ${rate}`);
  return new RateLimiter(rate, burst ?? 0);
}
