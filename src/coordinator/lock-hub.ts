import type { LockEvent } from "./types.ts";
import type { WatchStream } from "./watch-stream.ts";

/**
 * Fans lock events out to every WatchLock stream: the ones on the event's workspace and the ones
 * on all workspaces. Pushing never waits on a consumer (each stream buffers and coalesces), so one
 * slow reader cannot hold up the others or the operation that caused the event.
 */
export class LockHub {
  readonly #byWorkspace = new Map<string, Set<WatchStream>>();
  readonly #all = new Set<WatchStream>();
  #count = 0;

  get subscribers(): number {
    return this.#count;
  }

  /** Streams watching `workspace` itself (not counting all-workspace streams). */
  watching(workspace: string): number {
    return this.#byWorkspace.get(workspace)?.size ?? 0;
  }

  add(stream: WatchStream): void {
    const ws = stream.workspace;
    let set = this.#all;
    if (ws !== undefined) {
      const found = this.#byWorkspace.get(ws);
      set = found ?? new Set();
      if (!found) this.#byWorkspace.set(ws, set);
    }
    if (set.has(stream)) return;
    set.add(stream);
    this.#count++;
  }

  /** Returns whether the stream was subscribed. */
  remove(stream: WatchStream): boolean {
    const ws = stream.workspace;
    const set = ws === undefined ? this.#all : this.#byWorkspace.get(ws);
    if (!set?.delete(stream)) return false;
    this.#count--;
    if (ws !== undefined && set.size === 0) this.#byWorkspace.delete(ws);
    return true;
  }

  publish(event: Extract<LockEvent, { workspace: string }>): void {
    const own = this.#byWorkspace.get(event.workspace);
    if (own) for (const s of own) s.push(event);
    for (const s of this.#all) s.push(event);
  }

  /** Ends every stream (their iterators finish). */
  endAll(): void {
    const streams = [...this.#all, ...[...this.#byWorkspace.values()].flatMap((s) => [...s])];
    for (const s of streams) s.end();
  }
}
