/**
 * A request body whose pending read fails as soon as the call is aborted. Connect's own reads of a
 * request body do not watch the call's signal, so a call cut off at shutdown, or whose body
 * stalled, would otherwise wait on its body for good.
 */
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { toConnectError } from "../rpc/errors.ts";

export function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** The body idle timeout of a read: how long a read may wait for bytes, and what to do then. */
export interface ReadIdle {
  ms: number;
  /** Called once when a read waited `ms`: it should abort the call (the pending read then fails). */
  onIdle(): void;
}

/**
 * `body`, whose pending read fails with the signal's reason (as a ConnectError) once `signal`
 * aborts. With `idle`, a read that waits longer than `idle.ms` for bytes calls `idle.onIdle`: only
 * time the server spends waiting counts, so a reader that is busy (the body held back by flow
 * control meanwhile) is never timed out. One listener and one timer per body, re-armed per read.
 */
export function abortable(
  body: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
  idle?: ReadIdle,
): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      let timer: NodeJS.Timeout | undefined;
      /** A read is waiting for bytes. */
      let waiting = false;
      let fired = false;
      const onTimer = () => {
        if (!waiting || fired) return;
        fired = true;
        idle?.onIdle();
      };
      return {
        next: () =>
          new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
            if (signal.aborted) {
              reject(toConnectError(signal.reason));
              return;
            }
            const onAbort = () => reject(toConnectError(signal.reason));
            signal.addEventListener("abort", onAbort, { once: true });
            waiting = true;
            if (idle !== undefined && !fired) {
              if (timer === undefined) {
                timer = setTimeout(onTimer, idle.ms);
                timer.unref();
              } else timer.refresh();
            }
            const settle = () => {
              waiting = false;
              signal.removeEventListener("abort", onAbort);
            };
            it.next().then(
              (r) => {
                settle();
                // An active timer would keep this body (and what holds it) until it fires.
                if (r.done && timer !== undefined) clearTimeout(timer);
                resolve(r);
              },
              (err: unknown) => {
                settle();
                reject(err);
              },
            );
          }),
        return: async (value?: unknown) => {
          waiting = false;
          if (timer !== undefined) clearTimeout(timer);
          void it.return?.(value).catch(() => {});
          return { done: true, value: undefined };
        },
      };
    },
  };
}
