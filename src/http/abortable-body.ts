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

/**
 * `body`, whose pending read fails with the signal's reason (as a ConnectError) once `signal` aborts. The listener is
 * added per read and removed when it settles, so a long upload keeps nothing per chunk.
 */
export function abortable(body: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      return {
        next: () =>
          new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
            if (signal.aborted) {
              reject(toConnectError(signal.reason));
              return;
            }
            const onAbort = () => reject(toConnectError(signal.reason));
            signal.addEventListener("abort", onAbort, { once: true });
            it.next().then(
              (r) => {
                signal.removeEventListener("abort", onAbort);
                resolve(r);
              },
              (err: unknown) => {
                signal.removeEventListener("abort", onAbort);
                reject(err);
              },
            );
          }),
        return: async (value?: unknown) => {
          void it.return?.(value).catch(() => {});
          return { done: true, value: undefined };
        },
      };
    },
  };
}
