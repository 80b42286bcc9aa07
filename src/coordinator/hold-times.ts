/**
 * How long locks taken through the coordinator are usually held, per workspace: an exponentially
 * weighted mean of the time from taking a lock to seeing it freed. The lock line uses it to
 * decide whether a freed lock may wait for an absent caller (see LockService).
 */

/** Weight of the newest hold in the mean. */
const WEIGHT = 0.2;
/** Workspaces remembered; the least recently used are forgotten past it. */
const MAX_WORKSPACES = 10_000;

export class HoldTimes {
  readonly #since = new Map<string, number>();
  readonly #usual = new Map<string, number>();

  /** A lock was taken on `ws` at `now` (ms). */
  taken(ws: string, now: number): void {
    remember(this.#since, ws, now);
  }

  /** The lock of `ws` was seen free at `now`. */
  released(ws: string, now: number): void {
    const since = this.#since.get(ws);
    if (since === undefined) return;
    this.#since.delete(ws);
    const sample = Math.max(0, now - since);
    const prev = this.#usual.get(ws);
    remember(this.#usual, ws, prev === undefined ? sample : prev + WEIGHT * (sample - prev));
  }

  /** The usual hold time of `ws` in ms, or null before one was seen. */
  usualMs(ws: string): number | null {
    return this.#usual.get(ws) ?? null;
  }
}

function remember(map: Map<string, number>, key: string, value: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_WORKSPACES) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}
