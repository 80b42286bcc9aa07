/**
 * Iterating a caller's stream so that cancellation is prompt: an upload whose client went quiet
 * must not keep its temp file (and the caller) waiting for a chunk that may never come.
 */
import type { CallContext } from "./call-context.ts";

/**
 * Yields `source`'s chunks until it ends, or throws the call's CanceledError / DeadlineExceededError
 * as soon as the call is aborted, even while a chunk is awaited. The source is closed on early exit.
 */
export async function* abortableIterate<T>(source: AsyncIterable<T>, call: CallContext): AsyncGenerator<T> {
  call.check();
  const iterator = source[Symbol.asyncIterator]();
  const signal = call.signal;
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(call.abortError());
    signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  let finished = false;
  try {
    for (;;) {
      const next = iterator.next();
      // Left behind by an abort, it may still reject later; that is expected, not unhandled.
      next.catch(() => undefined);
      const result = await Promise.race([next, aborted]);
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!finished) {
      // Not awaited: a generator paused in an await only returns once that await settles.
      Promise.resolve()
        .then(() => iterator.return?.())
        .catch(() => undefined);
    }
  }
}
