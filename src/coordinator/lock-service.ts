import type { CallOptions } from "../call-options.ts";
import { CanceledError, InvalidArgumentError, type UnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  type Backend,
  emptyLockInfo,
  holderName,
  LockError,
  type LockInfo,
  type LockRead,
  lockHeldError,
} from "../oras/index.ts";
import { HoldTimes } from "./hold-times.ts";
import type { KeyedQueue } from "./keyed-queue.ts";
import { type Call, Line, type Ticket } from "./lock-line.ts";
import type { LockPollers } from "./lock-pollers.ts";
import {
  type KnownLock,
  knownFromStatus,
  type LockTracker,
  readKnownLock,
  UNLOCKED,
} from "./lock-tracker.ts";
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

/** How late past its due time a caller that retries on its own may come back and keep its place. */
export const RETURN_GRACE_MS = 1000;
/** Absent callers whose place is kept, per workspace; past it a refused caller just leaves. */
export const MAX_PARKED_PER_WORKSPACE = 256;

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

function reservedError(t: Ticket, now: number): LockError {
  const due = Math.max(0, t.expiresAt - now);
  return new LockError(
    `workspace ${JSON.stringify(t.workspace)} is held for the next caller in line, ` +
      `${holderName(t.info)}, for up to ${due} ms more`,
    t.info,
  );
}

/**
 * Lock and unlock on top of the per-workspace queue, with one line of waiting callers per
 * workspace, in arrival order whatever their protocol.
 *
 * A Lock with a wait that finds the lock held takes a ticket at the end of the line. When the lock
 * frees (an unlock through the coordinator at once, a foreign unlock when the poller sees it, a
 * lease running out), the line is served inside the workspace's queue, ahead of every other
 * operation on it, so a newcomer cannot overtake: the first ticket whose caller is there makes
 * its attempt; if the lock is taken by someone else first, it keeps its place.
 *
 * Callers that retry on their own (`retry`: the http backend, whose LOCK is held here for a short
 * wait and then answered 423) keep their ticket between calls, by lock ID, until they are due
 * back by their own retry delays plus RETURN_GRACE_MS. A freed lock is not left idle for an
 * absent caller: it goes to the next caller that is there, and the absent one, still first in
 * line, gets the next turn once back. Only when the absent caller is due back soon, within half
 * the lock's usual hold time on the workspace (and within its own wait), is the freed lock held
 * for it, until it is due back plus the grace: waiting costs the callers behind less then than
 * lending the lock past it would cost the absent one. Memory is bounded by the callers waiting
 * and MAX_PARKED_PER_WORKSPACE absent ones, time by their due times.
 */
export class LockService {
  readonly #d: LockServiceDeps;
  readonly #lines = new Map<string, Line>();
  readonly #pumping = new Set<string>();
  readonly #pumpAgain = new Set<string>();
  readonly #leaseTimers = new Map<string, NodeJS.Timeout>();
  readonly #holds = new HoldTimes();
  #waiterCount = 0;
  /** Set at shutdown: no waiter is taken any more. */
  #closed: UnavailableError | null = null;

  constructor(deps: LockServiceDeps) {
    this.#d = deps;
  }

  /** Lock calls held open, waiting for the lock (absent callers between retries not counted). */
  get waiterCount(): number {
    return this.#waiterCount;
  }

  /** Reads the lock inside the workspace's queue (one conditional GET) and records it. */
  async verify(ws: string, opts?: CallOptions): Promise<KnownLock> {
    const { backend, tracker } = this.#d;
    const known = await readKnownLock(backend.stateMgr(ws), tracker.get(ws), opts);
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

    if (opts.signal?.aborted) throw canceled(ws, "");
    const started = performance.now();
    let outcome = "acquired";
    try {
      const until = Math.min(Date.now() + waitMs, opts.deadline ?? Number.POSITIVE_INFINITY);
      const line = this.#lines.get(ws);
      const mine = opts.retry !== undefined ? line?.byId.get(info.id) : undefined;
      if (mine !== undefined) return await this.#rejoin(mine, info, opts.signal, until, waitMs);
      const known = this.#d.tracker.get(ws);
      const ownRetry = known?.state === "locked" && known.info.id === info.id;
      if (line !== undefined && !ownRetry) {
        // Others are in line already: join behind them rather than try ahead of them.
        const { promise } = this.#join(ws, info, opts, until, waitMs, null);
        if (this.#mayBeFree(ws)) this.#pump(ws);
        return await promise;
      }
      const joined: { promise?: Promise<LockResult> } = {};
      const first = await queue.run(
        ws,
        async () => {
          try {
            return await this.#attempt(ws, info, call);
          } catch (err) {
            if (!(err instanceof LockError) || Date.now() >= until || opts.signal?.aborted) throw err;
            // Joined inside the operation, so an unlock queued behind it already sees the ticket.
            joined.promise = this.#join(ws, info, opts, until, waitMs, err).promise;
            return null;
          }
        },
        { ...call, what: queuedWhat(ws) },
      );
      if (first !== null) return first;
      return await (joined.promise as Promise<LockResult>);
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
        // The core checks the ID against the lock just verified and deletes that lock by its
        // digest (1 request). Not cancellable: a release cut short leaves the caller not knowing.
        await backend.stateMgr(ws).unlock(id, { force, current: known.read });
        tracker.observe(ws, UNLOCKED);
        return known.info;
      },
      { ...call, what: queuedWhat(ws) },
    );
  }

  /** The lock was seen to free: serve the line. */
  freed(ws: string): void {
    this.#holds.released(ws, this.#d.now());
    this.#pump(ws);
  }

  /** Rejects every waiter, now and later (shutdown); drops absent callers' places. Running attempts finish. */
  rejectAll(err: UnavailableError): void {
    this.#closed = err;
    for (const line of [...this.#lines.values()]) {
      for (const t of [...line.tickets]) {
        if (t.call === null) this.#drop(t);
        else if (!t.call.attempting) this.#fail(t, err, false);
      }
    }
  }

  /**
   * One lock attempt; runs inside the workspace's queue. A lock known held by someone else is
   * checked with one conditional read and refused without a write; otherwise the core takes it,
   * from the lock just verified when there is one (verify, PUT, verify GET: 3 requests), else
   * from its own read (the same 3). The holder locking again renews its lease, when it has one,
   * through the core, which keeps the generation and moves `lease_expiry` (3 requests); without
   * a lease there is nothing to renew and the verified read answers. The write is not
   * cancellable: a lock write cut short between its PUT and its verify would leave a lock nobody
   * knows it holds. Unless `inLine` (the line's own turn), a lock held for an absent caller in
   * line is refused to others.
   */
  async #attempt(ws: string, info: LockInfo, opts: CallOptions, inLine = false): Promise<LockResult> {
    const { backend, tracker, logger } = this.#d;
    if (opts.signal?.aborted) throw canceled(ws, "");
    const reserved = this.#lines.get(ws)?.reserved;
    if (!inLine && reserved && reserved.id !== info.id) throw reservedError(reserved, Date.now());
    const mgr = backend.stateMgr(ws);
    const seen = tracker.get(ws);
    /** The stored LockInfo when this is the holder renewing: only the lease moves. */
    let renewing: LockInfo | null = null;
    /** The lock as verified in this turn, which the core then need not read again. */
    let current: LockRead | undefined;
    if (seen?.state === "locked" && isOwnLease(seen, info.id)) {
      // The core reads the lock itself before it renews: no read of ours first.
      renewing = seen.info;
    } else if (seen === undefined || seen.state === "locked") {
      const known = await this.verify(ws, opts);
      current = known.read;
      if (known.state === "locked") {
        if (isOwnLease(known, info.id)) renewing = known.info;
        else if (!known.corrupt && known.info.id === info.id) return resultOf(known);
        else if (!this.#mayBeStale(known)) throw this.#heldError(ws, known);
      }
    }
    let held: KnownLock & { state: "locked" };
    try {
      held = knownFromStatus(await mgr.acquireLock(renewing ?? info, { current }));
    } catch (err) {
      // Learn who has it (and its digest for cheap checks later); the refusal stands either way.
      if (err instanceof LockError) await this.verify(ws).catch(() => {});
      throw err;
    }
    tracker.observe(ws, held);
    if (renewing !== null) {
      // Never released on a cancel: the caller held the lock before (and a lease bounds it).
      // The line's lease timer follows the new lease end.
      if (this.#lines.has(ws)) this.#watchLease(ws);
      return resultOf(held);
    }
    if (opts.signal?.aborted) {
      // The caller left while the lock was being written: give it back rather than strand it.
      try {
        await mgr.unlock(info.id, { current: held.read });
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
    this.#holds.taken(ws, this.#d.now());
    // Taken by a call outside the line: a place kept for the same ID is no longer needed.
    const kept = this.#lines.get(ws)?.byId.get(info.id);
    if (kept !== undefined && kept.call === null) this.#drop(kept);
    return resultOf(held);
  }

  #heldError(ws: string, known: KnownLock & { state: "locked" }, suffix = ""): LockError {
    return lockHeldError(ws, this.#d.backend.stateMgr(ws).tags.locked, known, suffix);
  }

  #mayBeStale(known: KnownLock & { state: "locked" }): boolean {
    return known.leaseExpiresAt !== null && this.#d.now() >= known.leaseExpiresAt;
  }

  /** As far as the coordinator knows, the lock can be taken now. */
  #mayBeFree(ws: string): boolean {
    const known = this.#d.tracker.get(ws);
    return known === undefined || known.state === "unlocked" || this.#mayBeStale(known);
  }

  // ---- the line ----

  /** A new ticket at the end of the line, with its call open. */
  #join(
    ws: string,
    info: LockInfo,
    opts: LockOptions,
    until: number,
    holdMs: number,
    refusal: LockError | null,
  ): { ticket: Ticket; promise: Promise<LockResult> } {
    // Shutting down: no new waiters.
    if (this.#closed) throw this.#closed;
    let line = this.#lines.get(ws);
    if (line === undefined) {
      line = new Line();
      this.#lines.set(ws, line);
    }
    // Foreign unlocks reach the line through the workspace's poller.
    const lease = this.#d.pollers.acquire(ws);
    lease.ready.catch(() => {});
    const ticket: Ticket = {
      workspace: ws,
      id: info.id,
      info,
      retry: opts.retry,
      holdMs,
      call: null,
      refusals: 0,
      lastError: refusal,
      dueAt: 0,
      expiresAt: 0,
      expiry: undefined,
      releasePoller: lease.release,
    };
    const promise = this.#open(ticket, opts.signal, until);
    line.add(ticket);
    this.#watchLease(ws);
    return { ticket, promise };
  }

  /** The caller of a kept place is back: its new call takes the place (and any lock held for it). */
  #rejoin(
    t: Ticket,
    info: LockInfo,
    signal: AbortSignal | undefined,
    until: number,
    holdMs: number,
  ): Promise<LockResult> {
    if (this.#closed) return Promise.reject(this.#closed);
    const line = this.#lines.get(t.workspace) as Line;
    if (t.call !== null) {
      // A second call with the same ID (the client gave up on the first): the newer one waits.
      if (t.call.attempting) return Promise.reject(reservedError(t, Date.now()));
      this.#settle(t, undefined, this.#timeoutError(t, t.call));
    }
    clearTimeout(t.expiry);
    t.expiry = undefined;
    t.info = info;
    t.holdMs = holdMs;
    const promise = this.#open(t, signal, until);
    line.present++;
    // Back: a lock held for it is its to take now, in its turn; the hold has done its job.
    const wasReserved = line.reserved === t;
    if (wasReserved) line.reserved = null;
    if (wasReserved || this.#mayBeFree(t.workspace)) this.#pump(t.workspace);
    return promise;
  }

  /** Opens a call on `t` (not yet counted as present in its line). */
  #open(t: Ticket, signal: AbortSignal | undefined, until: number): Promise<LockResult> {
    let resolve!: (r: LockResult) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<LockResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const onTimeout = () => {
      if (t.call === call && !call.attempting) this.#refuse(t, true);
    };
    const onAbort = () => {
      if (t.call === call && !call.attempting) {
        this.#fail(t, canceled(t.workspace, " while waiting for the lock"), true);
      }
    };
    const timer = setTimeout(onTimeout, Math.max(0, until - Date.now()));
    signal?.addEventListener("abort", onAbort, { once: true });
    const call: Call = {
      signal,
      until,
      startedAt: Date.now(),
      attempting: false,
      resolve,
      reject,
      cleanup: () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      },
    };
    t.call = call;
    this.#waiterCount++;
    return promise;
  }

  /** Ends `t`'s call, keeping the ticket (the caller decides what becomes of it). */
  #settle(t: Ticket, result: LockResult | undefined, err?: unknown): void {
    const call = t.call;
    if (call === null) return;
    call.cleanup();
    t.call = null;
    this.#waiterCount--;
    const line = this.#lines.get(t.workspace);
    if (line?.tickets.includes(t)) line.present--;
    if (result !== undefined) call.resolve(result);
    else call.reject(err);
  }

  #grant(t: Ticket, result: LockResult): void {
    this.#settle(t, result);
    this.#drop(t);
  }

  /** Its wait ended with the lock still held: answer the refusal, and keep its place if it retries. */
  #refuse(t: Ticket, serveNext: boolean): void {
    const call = t.call;
    if (call === null) return;
    this.#settle(t, undefined, this.#timeoutError(t, call));
    const line = this.#lines.get(t.workspace);
    if (
      t.retry === undefined ||
      line === undefined ||
      this.#closed ||
      line.parked > MAX_PARKED_PER_WORKSPACE
    ) {
      this.#drop(t);
    } else {
      t.refusals++;
      const now = Date.now();
      const delay = t.retry.delayMs(t.refusals);
      t.dueAt = now + (Number.isFinite(delay) && delay > 0 ? delay : 0);
      t.expiresAt = t.dueAt + RETURN_GRACE_MS;
      t.expiry = setTimeout(() => this.#expire(t), t.expiresAt - now);
    }
    if (serveNext && this.#mayBeFree(t.workspace)) this.#pump(t.workspace);
  }

  /** An absent caller did not come back in time: its place goes. */
  #expire(t: Ticket): void {
    t.expiry = undefined;
    if (t.call !== null) return;
    const wasReserved = this.#lines.get(t.workspace)?.reserved === t;
    this.#drop(t);
    if (wasReserved) this.#pump(t.workspace);
  }

  /** Ends the call with an error and gives up the place. */
  #fail(t: Ticket, err: unknown, serveNext: boolean): void {
    this.#settle(t, undefined, err);
    this.#drop(t);
    if (serveNext && this.#mayBeFree(t.workspace)) this.#pump(t.workspace);
  }

  /** Removes the ticket from its line (its call, if any, settled before). */
  #drop(t: Ticket): void {
    clearTimeout(t.expiry);
    t.expiry = undefined;
    const line = this.#lines.get(t.workspace);
    if (line === undefined || !line.remove(t)) return;
    t.releasePoller();
    if (line.tickets.length === 0) {
      this.#lines.delete(t.workspace);
      this.#clearLeaseTimer(t.workspace);
    }
  }

  #timeoutError(t: Ticket, call: Call): LockError {
    const ws = t.workspace;
    const known = this.#d.tracker.get(ws);
    const suffix = ` after waiting ${Date.now() - call.startedAt} ms`;
    if (known?.state === "locked") return this.#heldError(ws, known, suffix);
    const reserved = this.#lines.get(ws)?.reserved;
    // Never an empty holder: OpenTofu retries a refusal only when it names a holder's ID.
    const holder = reserved && reserved !== t ? reserved.info : (t.lastError?.holder ?? emptyLockInfo());
    return new LockError(
      `workspace ${JSON.stringify(ws)} is still locked${holder.id ? ` (lock ID ${holder.id})` : ""}${suffix}`,
      holder,
      { generation: t.lastError?.generation ?? 0 },
    );
  }

  #pump(ws: string): void {
    if (!this.#lines.has(ws)) return;
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

  /** Gives the lock to the first caller in line that can have it; runs inside the workspace's queue. */
  async #serve(ws: string): Promise<void> {
    for (;;) {
      const line = this.#lines.get(ws);
      if (line === undefined) return;
      const t = this.#nextTurn(ws, line);
      const call = t?.call;
      if (t === undefined || call === null || call === undefined) return;
      call.attempting = true;
      try {
        const result = await this.#attempt(ws, t.info, { signal: call.signal }, true);
        call.attempting = false;
        this.#grant(t, result);
        return;
      } catch (err) {
        call.attempting = false;
        if (err instanceof LockError && Date.now() < call.until && !call.signal?.aborted) {
          t.lastError = err;
          this.#watchLease(ws);
          return; // still held by someone else: keep the place
        }
        // This loop goes on with the next ticket itself.
        if (err instanceof LockError) {
          t.lastError = err;
          this.#refuse(t, false);
        } else if (call.signal?.aborted) {
          this.#fail(t, err instanceof CanceledError ? err : canceled(ws, ""), false);
        } else this.#fail(t, err, false);
      }
    }
  }

  /**
   * Whose turn it is: the first ticket with a call, unless an absent caller ahead of it has the
   * lock held for it, or is due back soon enough to have the lock, free now, held for it.
   */
  #nextTurn(ws: string, line: Line): Ticket | undefined {
    const free = this.#mayBeFree(ws);
    for (const t of line.tickets) {
      if (t.call !== null) return t;
      if (line.reserved === t) return undefined;
      if (line.reserved === null && free && this.#dueSoon(t)) {
        line.reserved = t;
        return undefined;
      }
    }
    return undefined;
  }

  #dueSoon(t: Ticket): boolean {
    const usual = this.#holds.usualMs(t.workspace);
    const limit = usual === null ? t.holdMs : Math.min(t.holdMs, usual / 2);
    return t.dueAt - Date.now() <= limit;
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
