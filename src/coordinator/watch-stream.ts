import type { LockEvent, LockWatch } from "./types.ts";

type WorkspaceEvent = Extract<LockEvent, { workspace: string }>;

/**
 * One WatchLock subscriber: a bounded buffer between the hub (which pushes without ever waiting)
 * and the consumer (which pulls at its own pace), exposed as an async iterator.
 *
 * Below `capacity` every event is kept. At capacity the buffer coalesces: a new event replaces every
 * queued change of its workspace, so the buffer holds at most `capacity` events plus one per
 * workspace, and the last event of a workspace always describes its latest known status. A change
 * for a workspace of which only the snapshot is queued updates that snapshot in place, so a stream
 * always opens with its snapshots.
 *
 * Read either with `next()` or with `take()` and `wait()` (see LockWatch), not both.
 */
export class WatchStream implements LockWatch {
  readonly workspace: string | undefined;
  readonly #capacity: number;
  readonly #onClose: (stream: WatchStream) => void;
  /**
   * The oldest event not yet taken, kept out of `#queue`: a watch of a live consumer holds one
   * event at a time, and this way it does so without touching an array. Events behind it, when the
   * consumer lags, queue in `#queue` from `#head` on.
   */
  #first: LockEvent | undefined;
  #queue: LockEvent[] = [];
  #head = 0;
  #waiter: { resolve: (r: IteratorResult<LockEvent>) => void; reject: (err: unknown) => void } | null = null;
  #ready: (() => void) | null = null;
  #ended = false;
  /** The error `next()` has yet to report. */
  #failure: unknown = null;
  #failedWith: unknown;
  #coalesced = 0;

  constructor(workspace: string | undefined, capacity: number, onClose: (stream: WatchStream) => void) {
    this.workspace = workspace;
    this.#capacity = Math.max(1, capacity);
    this.#onClose = onClose;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get failure(): unknown {
    return this.#failedWith;
  }

  /** Events not yet taken by the consumer. */
  get pending(): number {
    return (this.#first !== undefined ? 1 : 0) + this.#queue.length - this.#head;
  }

  /** Events merged into queued ones because the consumer lagged. */
  get coalesced(): number {
    return this.#coalesced;
  }

  push(event: LockEvent): void {
    if (this.#ended) return;
    if (this.#waiter !== null) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve({ value: event, done: false });
      return;
    }
    const pending = this.pending;
    if (pending >= this.#capacity && event.kind !== "snapshot_complete") this.#coalesce(event);
    else if (pending === 0) this.#first = event;
    else this.#queue.push(event);
    this.#signalReady();
  }

  take(): LockEvent | undefined {
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      return first;
    }
    if (this.#head >= this.#queue.length) return undefined;
    const value = this.#queue[this.#head] as LockEvent;
    this.#head++;
    if (this.#head === this.#queue.length) {
      // Drained: keep the array (and its room) for the next lag, without the delivered events.
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#queue.length) {
      // Compact now and then so a long-lived stream does not keep delivered events.
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return value;
  }

  wait(ready: () => void): void {
    if (this.#ended || this.pending > 0) ready();
    else this.#ready = ready;
  }

  close(): void {
    this.end();
  }

  #signalReady(): void {
    const ready = this.#ready;
    this.#ready = null;
    ready?.();
  }

  /**
   * Drops the queued changes of the event's workspace and appends the event; or, when only its
   * snapshot is queued, turns the snapshot into the new status.
   */
  #coalesce(event: WorkspaceEvent): void {
    let snapshotAt = -1;
    const kept: LockEvent[] = [];
    if (this.#first !== undefined) {
      // Queue order: the first event, then the rest.
      this.#queue.splice(0, this.#head, this.#first);
      this.#head = 0;
      this.#first = undefined;
    }
    for (let i = this.#head; i < this.#queue.length; i++) {
      const queued = this.#queue[i] as LockEvent;
      if (queued.kind !== "snapshot_complete" && queued.workspace === event.workspace) {
        if (queued.kind === "snapshot") snapshotAt = kept.length;
        else {
          this.#coalesced++;
          continue;
        }
      }
      kept.push(queued);
    }
    const dropped = this.#queue.length - this.#head - kept.length;
    this.#queue = kept;
    this.#head = 0;
    if (dropped === 0 && snapshotAt >= 0) {
      kept[snapshotAt] =
        event.kind === "unlocked"
          ? { ...event, kind: "snapshot", info: undefined, generation: 0 }
          : { ...event, kind: "snapshot" };
      this.#coalesced++;
      return;
    }
    kept.push(event);
  }

  /** Finishes the stream: a waiting `next()` and every later one report done. Queued events are dropped. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#first = undefined;
    this.#queue = [];
    this.#head = 0;
    this.#onClose(this);
    const w = this.#waiter;
    this.#waiter = null;
    w?.resolve({ value: undefined, done: true });
    this.#signalReady();
  }

  /** Ends the stream with an error: the waiting (or next) `next()` rejects with it, later ones report done. */
  fail(err: unknown): void {
    if (this.#ended) return;
    this.#failedWith = err;
    const w = this.#waiter;
    this.#waiter = null;
    this.end();
    if (w) w.reject(err);
    else this.#failure = err;
  }

  next(): Promise<IteratorResult<LockEvent>> {
    const value = this.take();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.#failure !== null) {
      const err = this.#failure;
      this.#failure = null;
      return Promise.reject(err);
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter !== null)
      return Promise.reject(new Error("WatchStream.next() called while another is pending"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<LockEvent>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): WatchStream {
    return this;
  }
}
