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
  let finished = false;
  try {
    for (;;) {
      const result = await nextOrAbort(iterator, call);
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    if (!finished) {
      // Not awaited: a generator paused in an await only returns once that await settles.
      Promise.resolve()
        .then(() => iterator.return?.())
        .catch(() => undefined);
    }
  }
}

/**
 * The iterator's next result, or the call's abort error as soon as it is aborted. One listener per
 * read, removed when the read settles: a race against one promise that lives as long as the call
 * would keep every chunk ever read reachable from it (a 256 MiB upload held whole).
 */
function nextOrAbort<T>(iterator: AsyncIterator<T>, call: CallContext): Promise<IteratorResult<T>> {
  const signal = call.signal;
  if (signal.aborted) return Promise.reject(call.abortError());
  return new Promise<IteratorResult<T>>((resolve, reject) => {
    const onAbort = () => reject(call.abortError());
    signal.addEventListener("abort", onAbort, { once: true });
    iterator.next().then(
      (r) => {
        signal.removeEventListener("abort", onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
