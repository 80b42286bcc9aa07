/**
 * Every call in progress, RPC or plain HTTP route, and the one signal each is handed: it aborts
 * when the client goes away, when the request body stalls, when the server drains (long-lived
 * streams only: WatchLock and health Watch end with UNAVAILABLE so clients reconnect elsewhere)
 * and when the shutdown grace period ends (every call). Handlers read the reason from the signal.
 *
 * One AbortController per call, and the registry a set walked once at drain and at cut-off: one
 * shared shutdown signal with a listener per call would make opening a call cost time in
 * proportion to the calls open (a signal's listeners are a list), with thousands of watchers.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { CanceledError } from "../errors.ts";
import { ServerDrainingError } from "../rpc/fast-methods.ts";

export interface Call {
  /** The call's signal; its reason says why it was aborted. */
  readonly signal: AbortSignal;
  /** Aborts the call (first reason wins). */
  abort(reason: unknown): void;
  /** The call is done: it leaves the registry. */
  close(): void;
}

export class CallRegistry {
  readonly #calls = new Map<AbortController, boolean>();
  readonly #drain = new AbortController();
  #cutOff: ConnectError | undefined;

  /** Aborts when the server starts to drain (for readiness, not for calls: they have their own). */
  get drainSignal(): AbortSignal {
    return this.#drain.signal;
  }

  get size(): number {
    return this.#calls.size;
  }

  /** A new call; a `longLived` one is ended by the drain. Opened during shutdown, it starts aborted. */
  open(longLived: boolean): Call {
    const call = new RegisteredCall(this.#calls);
    if (this.#cutOff !== undefined) call.abort(this.#cutOff);
    else if (longLived && this.#drain.signal.aborted) call.abort(new ServerDrainingError());
    this.#calls.set(call.controller, longLived);
    return call;
  }

  /** The server starts to shut down: long-lived calls end now, the others may finish. */
  drain(): void {
    if (this.#drain.signal.aborted) return;
    this.#drain.abort(new ServerDrainingError());
    for (const [controller, longLived] of this.#calls) {
      if (longLived) controller.abort(new ServerDrainingError());
    }
  }

  /** The grace period is over: every call still running, and every later one, is cut off. */
  cutOff(): void {
    this.#cutOff ??= new ConnectError("the server is shutting down", Code.Unavailable);
    for (const controller of this.#calls.keys()) controller.abort(this.#cutOff);
  }
}

/** One call: its own controller, in the registry until closed. A class: thousands are open at once. */
class RegisteredCall implements Call {
  readonly controller = new AbortController();
  readonly #calls: Map<AbortController, boolean>;

  constructor(calls: Map<AbortController, boolean>) {
    this.#calls = calls;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    this.controller.abort(reason);
  }

  close(): void {
    this.#calls.delete(this.controller);
  }
}

/** The reason a call's signal carries when its client went away. */
export function clientGone(): CanceledError {
  return new CanceledError("the client went away");
}
