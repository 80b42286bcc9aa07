/**
 * WatchLock's body writer (rpc/fast-methods.ts): a watch's events written to its stream as frames
 * encoded once per event and codec and shared by every stream (rpc/watch-lock.ts `watchFrame`).
 * Events flow without a promise or a closure per event: the pump takes what the watch has queued,
 * writes it, and asks the watch to wake it again, from inside the lock change that queues the next
 * event; a client that reads slowly is waited for through "drain" while its watch coalesces.
 */
import type { LockWatch } from "../coordinator/types.ts";
import { ResourceExhaustedError } from "../errors.ts";
import type { WatchSink } from "../rpc/fast-methods.ts";
import { type EventView, eventFor, type WatchCodec, watchFrame } from "../rpc/watch-lock.ts";
import type { StreamResponse } from "./stream-response.ts";

/**
 * Streams a change is written to before the event loop gets a turn. Node sends what was written
 * only when the loop turns, so writing a change to 10,000 streams in one pass would hold every
 * byte back until the last stream is done; in slices, the first watchers are reading while the
 * server writes to the rest.
 */
const WRITES_PER_TURN = 250;

/**
 * Runs the watchers' writes, at most WRITES_PER_TURN per turn of the event loop, grouped by
 * connection: Node sends each HTTP/2 session's pending frames in one socket write per turn, so a
 * slice that covers a few connections' streams costs a few system calls, where the same slice
 * taken in subscription order (streams spread over every connection) cost one per connection.
 * Writes of one connection keep their order; connections are served in the order of their first.
 */
export class FanOut {
  readonly #groups = new Map<object, (() => void)[]>();
  #turnScheduled = false;

  run(write: () => void, connection: object): void {
    const queue = this.#groups.get(connection);
    if (queue === undefined) this.#groups.set(connection, [write]);
    else queue.push(write);
    if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#turn);
    }
  }

  readonly #turn = (): void => {
    this.#turnScheduled = false;
    let budget = WRITES_PER_TURN;
    for (const [connection, queue] of this.#groups) {
      let done = 0;
      // A write may queue more on this connection (a new event): the loop takes it too.
      while (done < queue.length && budget > 0) {
        (queue[done++] as () => void)();
        budget--;
      }
      if (done < queue.length) {
        queue.splice(0, done);
        break;
      }
      this.#groups.delete(connection);
    }
    if (this.#groups.size > 0 && !this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#turn);
    }
  };
}

/** A WatchSink that writes to `res` in `codec`, through the server's one FanOut. */
export function watchFrameSink(
  res: StreamResponse,
  codec: WatchCodec,
  fanOut: FanOut,
  maxMessageBytes: number,
): WatchSink {
  return {
    pump(watch, requested, view) {
      return new Promise<void>((resolve, reject) => {
        new WatchPump(watch, requested, view, res, codec, fanOut, maxMessageBytes, resolve, reject).start();
      });
    },
  };
}

class WatchPump {
  readonly #watch: LockWatch;
  readonly #requested: string;
  readonly #view: EventView;
  readonly #res: StreamResponse;
  readonly #codec: WatchCodec;
  readonly #fanOut: FanOut;
  readonly #max: number;
  readonly #resolve: () => void;
  readonly #reject: (err: unknown) => void;

  constructor(
    watch: LockWatch,
    requested: string,
    view: EventView,
    res: StreamResponse,
    codec: WatchCodec,
    fanOut: FanOut,
    max: number,
    resolve: () => void,
    reject: (err: unknown) => void,
  ) {
    this.#watch = watch;
    this.#requested = requested;
    this.#view = view;
    this.#res = res;
    this.#codec = codec;
    this.#fanOut = fanOut;
    this.#max = max;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Runs until the watch ends: the call's signal ends it when the client leaves (see onDrain too). */
  start(): void {
    this.#pump();
  }

  /** Called by the watch, from inside the change, when it has an event (or has ended). */
  readonly #wake = (): void => this.#fanOut.run(this.#pump, this.#res.connection);

  readonly #pump = (): void => {
    const watch = this.#watch;
    try {
      for (;;) {
        const event = watch.take();
        if (event === undefined) {
          if (!watch.ended) watch.wait(this.#wake);
          else if (watch.failure !== undefined) this.#reject(watch.failure);
          else this.#resolve();
          return;
        }
        const { show, hideId } = eventFor(event, this.#view);
        if (!show) continue;
        const frame = watchFrame(event, this.#requested, this.#codec, hideId);
        if (frame.byteLength - 5 > this.#max) {
          throw new ResourceExhaustedError(
            `a WatchLock message of ${frame.byteLength - 5} bytes is larger than the ${this.#max}-byte message limit`,
            this.#max,
          );
        }
        if (!this.#res.write(frame)) {
          this.#res.onDrain(this.#pump);
          return;
        }
      }
    } catch (err) {
      watch.close();
      this.#reject(err);
    }
  };
}
