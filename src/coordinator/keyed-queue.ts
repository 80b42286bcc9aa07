import { AsyncResource } from "node:async_hooks";
import type { CallOptions } from "../call-options.ts";
import { CallContext } from "../oci/call-context.ts";

interface Task {
  start(): void;
}

/**
 * Runs operations one at a time per key, in arrival order. A caller whose signal aborts or whose
 * deadline passes while still queued leaves the queue and gets CanceledError/DeadlineExceededError;
 * once its operation has started, cancelling it is up to the operation.
 */
export class KeyedQueue {
  /** Per key: the tasks waiting behind the running one. A key is present while one runs. */
  readonly #waiting = new Map<string, Task[]>();
  #size = 0;

  /** Operations running or queued, over all keys. */
  get size(): number {
    return this.#size;
  }

  isBusy(key: string): boolean {
    return this.#waiting.has(key);
  }

  /**
   * Runs `fn` once every earlier operation on `key` has finished. `front` puts it ahead of the
   * queued ones (a hand-off that must not be overtaken), still behind the running one.
   */
  run<T>(
    key: string,
    fn: () => Promise<T>,
    opts?: CallOptions & { front?: boolean; what?: string },
  ): Promise<T> {
    const queue = this.#waiting.get(key);
    if (queue === undefined) {
      this.#waiting.set(key, []);
      this.#size++;
      return this.#execute(key, fn);
    }
    const call = new CallContext(opts, opts?.what ?? `operation on ${JSON.stringify(key)}`);
    if (call.done) return Promise.reject(call.abortError("while queued"));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const at = queue.indexOf(task);
        if (at >= 0) {
          queue.splice(at, 1);
          this.#size--;
        }
        reject(call.abortError("while queued behind other operations on the workspace"));
      };
      const task: Task = {
        // Runs in the caller's async context, so its trace spans and logs stay with its RPC.
        start: AsyncResource.bind(() => {
          call.signal.removeEventListener("abort", onAbort);
          this.#execute(key, fn).then(resolve, reject);
        }),
      };
      if (opts?.front) queue.unshift(task);
      else queue.push(task);
      this.#size++;
      call.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  async #execute<T>(key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } finally {
      this.#size--;
      const queue = this.#waiting.get(key);
      const next = queue?.shift();
      if (next === undefined) this.#waiting.delete(key);
      else next.start();
    }
  }
}
