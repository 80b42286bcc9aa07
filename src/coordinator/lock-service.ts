import { CanceledError, InvalidArgumentError, type UnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { CallOptions } from "../oci/target.ts";
import { type Backend, emptyLockInfo, LockError, type LockInfo } from "../oras/index.ts";
import { heldError } from "./fencing.ts";
import type { KeyedQueue } from "./keyed-queue.ts";
import { readLock, releaseLock, takeLock } from "./lock-ops.ts";
import type { LockPollers, PollerLease } from "./lock-pollers.ts";
import { type KnownLock, type LockTracker, UNLOCKED } from "./lock-tracker.ts";
import type { CoordinatorMetrics } from "./metrics.ts";
import type { LockOptions, LockResult, UnlockOptions } from "./types.ts";

export interface LockServiceDeps {
  backend: Backend;
  queue: KeyedQueue;
  tracker: LockTracker;
  pollers: LockPollers;
  metrics: CoordinatorMetrics;
  logger: Logger;
  now: () => number;
  maxLockWaitMs: number;
}

/** A Lock call waiting for the workspace's lock to free. */
interface Waiter {
  readonly workspace: string;
  readonly info: LockInfo;
  readonly signal: AbortSignal | undefined;
  /** When the wait ends (Date.now() scale). */
  readonly until: number;
  readonly startedAt: number;
  /** The last refusal, for the error at the end of the wait. */
  lastError: LockError | null;
  /** Its lock attempt is running: timeouts and cancels are settled by the attempt. */
  attempting: boolean;
  settled: boolean;
  resolve(result: LockResult): void;
  reject(err: unknown): void;
  cleanup(): void;
}

const queuedWhat = (ws: string) => `lock operation on workspace ${JSON.stringify(ws)}`;

function resultOf(held: KnownLock & { state: "locked" }): LockResult {
  return {
    id: held.info.id,
    generation: held.generation,
    leaseExpiresAt: held.leaseExpiresAt,
    info: held.info,
  };
}

/** Held by `id` with a lease: locking again renews it. */
function isOwnLease(known: KnownLock & { state: "locked" }, id: string): boolean {
  return !known.corrupt && known.info.id === id && known.leaseExpiresAt !== null;
}

function canceled(ws: string, detail: string): CanceledError {
  return new CanceledError(`locking workspace ${JSON.stringify(ws)}: canceled by the caller${detail}`);
}

/**
 * Lock and unlock on top of the per-workspace queue, with waiting: a Lock with a wait that finds
 * the lock held joins the workspace's waiters (FIFO). When the lock frees (an unlock through the
 * coordinator at once, a foreign unlock when the poller sees it, a lease running out), the first
 * waiter's attempt is queued ahead of every other operation on the workspace, so a newcomer cannot
 * overtake it; if the lock is taken by someone else first, it keeps its place.
 */
export class LockService {
  readonly #d: LockServiceDeps;
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #pumping = new Set<string>();
  readonly #pumpAgain = new Set<string>();
  readonly #leaseTimers = new Map<string, NodeJS.Timeout>();
  #waiterCount = 0;
  /** Set at shutdown: no waiter is taken any more. */
  #closed: UnavailableError | null = null;

  constructor(deps: LockServiceDeps) {
    this.#d = deps;
  }

  get waiterCount(): number {
    return this.#waiterCount;
  }

  /** Reads the lock inside the workspace's queue (one conditional GET) and records it. */
  async verify(ws: string, opts?: CallOptions): Promise<KnownLock> {
    const { backend, tracker } = this.#d;
    const known = await readLock(backend.stateMgr(ws), tracker.get(ws), opts);
    tracker.observe(ws, known);
    return known;
  }

  async lock(ws: string, info: LockInfo, opts: LockOptions = {}): Promise<LockResult> {
    const { queue, maxLockWaitMs, metrics } = this.#d;
    const requested = opts.waitMs ?? 0;
    if (!Number.isFinite(requested) || requested < 0) {
      throw new InvalidArgumentError(
        `lock wait must be a non-negative number of ms, got ${String(opts.waitMs)}`,
      );
    }
    const waitMs = Math.min(requested, maxLockWaitMs);
    const call: CallOptions = { signal: opts.signal, deadline: opts.deadline };
    if (waitMs === 0)
      return queue.run(ws, () => this.#attempt(ws, info, call), { ...call, what: queuedWhat(ws) });

    const started = performance.now();
    let outcome = "acquired";
    try {
      const until = Math.min(Date.now() + waitMs, opts.deadline ?? Number.POSITIVE_INFINITY);
      const { waiter, promise } = this.#newWaiter(ws, info, call, until);
      const known = this.#d.tracker.get(ws);
      const ownRetry = known?.state === "locked" && known.info.id === info.id;
      if (this.#waiters.has(ws) && !ownRetry) {
        // Others wait already: join behind them rather than try ahead of them.
        this.#enqueue(waiter);
      } else {
        const first = await queue.run(
          ws,
          async () => {
            try {
              return await this.#attempt(ws, info, call);
            } catch (err) {
              if (!(err instanceof LockError) || Date.now() >= until || opts.signal?.aborted) throw err;
              // Joined inside the operation, so an unlock queued behind it already sees the waiter.
              waiter.lastError = err;
              this.#enqueue(waiter);
              return null;
            }
          },
          { ...call, what: queuedWhat(ws) },
        );
        if (first !== null) return first;
      }
      return await promise;
    } catch (err) {
      outcome = err instanceof LockError ? "timeout" : err instanceof CanceledError ? "canceled" : "error";
      throw err;
    } finally {
      metrics.lockWait.record((performance.now() - started) / 1000, { outcome });
    }
  }

  async unlock(ws: string, id: string, opts: UnlockOptions = {}): Promise<LockInfo | null> {
    const force = opts.force ?? false;
    if (!force && id === "") throw new InvalidArgumentError("unlock needs the holder's lock ID, or force");
    const { queue, backend, tracker } = this.#d;
    const call: CallOptions = { signal: opts.signal, deadline: opts.deadline };
    return queue.run(
      ws,
      async () => {
        const known = await this.verify(ws, call);
        if (known.state === "unlocked") return null;
        if (!force && known.info.id !== id) {
          throw new LockError(
            `lock ID mismatch: workspace ${JSON.stringify(ws)} is locked with ID ${known.info.id}, not ${id}`,
            known.info,
            { generation: known.generation },
          );
        }
        await releaseLock(backend.stateMgr(ws), known.info.id, force, known.digest);
        tracker.observe(ws, UNLOCKED);
        return known.info;
      },
      { ...call, what: queuedWhat(ws) },
    );
  }

  /** The lock was seen to free: serve the first waiter. */
  freed(ws: string): void {
    this.#pump(ws);
  }

  /** Rejects every waiter, now and later (shutdown). Attempts already running finish on their own. */
  rejectAll(err: UnavailableError): void {
    this.#closed = err;
    for (const list of [...this.#waiters.values()]) {
      for (const w of [...list]) if (!w.attempting) this.#finish(w, undefined, err);
    }
  }

  /**
   * One lock attempt; runs inside the workspace's queue. A lock known held by someone else is
   * checked with one conditional read and refused without a write; otherwise the core takes it
   * (3 requests). The holder locking again renews its lease, when it has one, through the core,
   * which keeps the generation and moves `lease_expiry` (3 requests); without a lease there is
   * nothing to renew and the verified read answers.
   */
  async #attempt(ws: string, info: LockInfo, opts: CallOptions): Promise<LockResult> {
    const { backend, tracker, logger } = this.#d;
    if (opts.signal?.aborted) throw canceled(ws, "");
    const mgr = backend.stateMgr(ws);
    const seen = tracker.get(ws);
    /** The stored LockInfo when this is the holder renewing: only the lease moves. */
    let renewing: LockInfo | null = null;
    if (seen?.state === "locked" && isOwnLease(seen, info.id)) {
      // The core reads the lock itself before it renews: no read of ours first.
      renewing = seen.info;
    } else if (seen === undefined || seen.state === "locked") {
      const known = await this.verify(ws, opts);
      if (known.state === "locked") {
        if (isOwnLease(known, info.id)) renewing = known.info;
        else if (!known.corrupt && known.info.id === info.id) return resultOf(known);
        else if (!this.#mayBeStale(known)) throw heldError(ws, known);
      }
    }
    let held: KnownLock & { state: "locked" };
    try {
      held = await takeLock(mgr, renewing ?? info);
    } catch (err) {
      // Learn who has it (and its digest for cheap checks later); the refusal stands either way.
      if (err instanceof LockError) await this.verify(ws).catch(() => {});
      throw err;
    }
    tracker.observe(ws, held);
    if (renewing !== null) {
      // Never released on a cancel: the caller held the lock before. Waiters' lease timer follows.
      if (this.#waiters.has(ws)) this.#watchLease(ws);
      return resultOf(held);
    }
    if (opts.signal?.aborted) {
      // The caller left while the lock was being written: give it back rather than strand it.
      try {
        await releaseLock(mgr, info.id, false, held.digest);
        tracker.observe(ws, UNLOCKED);
      } catch (err) {
        logger.warn("could not release a lock whose caller went away", {
          workspace: ws,
          lockId: info.id,
          error: err,
        });
      }
      throw canceled(ws, "; the lock taken meanwhile was released");
    }
    return resultOf(held);
  }

  #mayBeStale(known: KnownLock & { state: "locked" }): boolean {
    return known.leaseExpiresAt !== null && this.#d.now() >= known.leaseExpiresAt;
  }

  #newWaiter(
    ws: string,
    info: LockInfo,
    opts: CallOptions,
    until: number,
  ): { waiter: Waiter; promise: Promise<LockResult> } {
    let resolve!: (r: LockResult) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<LockResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const waiter: Waiter = {
      workspace: ws,
      info,
      signal: opts.signal,
      until,
      startedAt: Date.now(),
      lastError: null,
      attempting: false,
      settled: false,
      resolve,
      reject,
      cleanup: () => {},
    };
    return { waiter, promise };
  }

  #enqueue(w: Waiter): void {
    if (this.#closed) {
      w.settled = true;
      w.reject(this.#closed);
      return;
    }
    const ws = w.workspace;
    let list = this.#waiters.get(ws);
    if (!list) {
      list = [];
      this.#waiters.set(ws, list);
    }
    list.push(w);
    this.#waiterCount++;
    // Foreign unlocks reach waiters through the workspace's poller.
    const lease: PollerLease = this.#d.pollers.acquire(ws);
    lease.ready.catch(() => {});
    const timer = setTimeout(() => this.#onTimeout(w), Math.max(0, w.until - Date.now()));
    const onAbort = () => this.#onAbort(w);
    w.signal?.addEventListener("abort", onAbort, { once: true });
    w.cleanup = () => {
      clearTimeout(timer);
      w.signal?.removeEventListener("abort", onAbort);
      lease.release();
    };
    this.#watchLease(ws);
  }

  #onTimeout(w: Waiter): void {
    if (!w.attempting) this.#finish(w, undefined, this.#timeoutError(w));
  }

  #onAbort(w: Waiter): void {
    if (!w.attempting) this.#finish(w, undefined, canceled(w.workspace, " while waiting for the lock"));
  }

  #timeoutError(w: Waiter): LockError {
    const known = this.#d.tracker.get(w.workspace);
    const suffix = ` after waiting ${Date.now() - w.startedAt} ms`;
    if (known?.state === "locked") return heldError(w.workspace, known, suffix);
    const holder = w.lastError?.holder ?? emptyLockInfo();
    return new LockError(
      `workspace ${JSON.stringify(w.workspace)} is still locked${holder.id ? ` (lock ID ${holder.id})` : ""}${suffix}`,
      holder,
      { generation: w.lastError?.generation ?? 0 },
    );
  }

  /** Removes a waiter and settles it; unless `serveNext` is false, the next one is served if the lock is free. */
  #finish(w: Waiter, result: LockResult | undefined, err?: unknown, serveNext = true): void {
    if (w.settled) return;
    w.settled = true;
    w.cleanup();
    const list = this.#waiters.get(w.workspace);
    const at = list?.indexOf(w) ?? -1;
    if (list && at >= 0) {
      list.splice(at, 1);
      this.#waiterCount--;
      if (list.length === 0) {
        this.#waiters.delete(w.workspace);
        this.#clearLeaseTimer(w.workspace);
      }
    }
    if (result !== undefined) w.resolve(result);
    else w.reject(err);
    if (
      serveNext &&
      at === 0 &&
      result === undefined &&
      this.#d.tracker.get(w.workspace)?.state === "unlocked"
    ) {
      this.#pump(w.workspace);
    }
  }

  #pump(ws: string): void {
    if (!this.#waiters.has(ws)) return;
    if (this.#pumping.has(ws)) {
      this.#pumpAgain.add(ws);
      return;
    }
    this.#pumping.add(ws);
    this.#d.queue
      .run(ws, () => this.#serve(ws), { front: true })
      .catch((err: unknown) =>
        this.#d.logger.warn("serving lock waiters failed", { workspace: ws, error: err }),
      )
      .finally(() => {
        this.#pumping.delete(ws);
        if (this.#pumpAgain.delete(ws)) this.#pump(ws);
      });
  }

  /** Gives the lock to the first waiter that can have it; runs inside the workspace's queue. */
  async #serve(ws: string): Promise<void> {
    for (;;) {
      const w = this.#waiters.get(ws)?.[0];
      if (w === undefined) return;
      w.attempting = true;
      try {
        const result = await this.#attempt(ws, w.info, { signal: w.signal });
        w.attempting = false;
        this.#finish(w, result);
        return;
      } catch (err) {
        w.attempting = false;
        if (err instanceof LockError && Date.now() < w.until && !w.signal?.aborted) {
          w.lastError = err;
          this.#watchLease(ws);
          return; // still held by someone else: keep the place
        }
        // This loop goes on with the next waiter itself.
        if (err instanceof LockError) this.#finish(w, undefined, this.#timeoutError(w), false);
        else if (w.signal?.aborted) {
          this.#finish(w, undefined, err instanceof CanceledError ? err : canceled(ws, ""), false);
        } else this.#finish(w, undefined, err, false);
      }
    }
  }

  /** A holder's lease that runs out lets a waiter take the lock over: try again then. */
  #watchLease(ws: string): void {
    this.#clearLeaseTimer(ws);
    const known = this.#d.tracker.get(ws);
    if (known?.state !== "locked" || known.leaseExpiresAt === null) return;
    const inMs = known.leaseExpiresAt - this.#d.now();
    if (inMs <= 0) return; // already past: the last attempt was refused anyway
    const timer = setTimeout(() => {
      this.#leaseTimers.delete(ws);
      this.#pump(ws);
    }, inMs + 10);
    this.#leaseTimers.set(ws, timer);
  }

  #clearLeaseTimer(ws: string): void {
    const t = this.#leaseTimers.get(ws);
    if (t !== undefined) clearTimeout(t);
    this.#leaseTimers.delete(ws);
  }
}
