/**
 * Messages between the watch benchmark and its client processes: objects over Node's IPC channel
 * for bench/watch-client.ts, one JSON object a line over stdin and stdout for bench/watch-go (whose
 * protocol.go mirrors these types; keep the two in step).
 */

export interface OpenCommand {
  type: "open";
  url: string;
  workspace: string;
  watchers: number;
  /** HTTP/2 connections to spread this process's watchers over. */
  connections: number;
}

export type ParentMessage =
  | OpenCommand
  /** Hand over the delivery times recorded for this lock ID and forget them. */
  | { type: "collect"; lockId: string }
  | { type: "close" };

export type EventKind = "locked" | "unlocked";

export type ClientMessage =
  /** Every watcher has its snapshot: the stream is live. */
  | { type: "ready"; openMs: number }
  /** Every watcher of this process has received this event. */
  | { type: "delivered"; kind: EventKind; lockId: string }
  /**
   * Delivery times (monotonic ms) of the events for `lockId`, and for each how long after the
   * server observed the change (its observe_time) it was delivered (wall-clock ms).
   */
  | {
      type: "times";
      lockId: string;
      locked: number[];
      unlocked: number[];
      lockedSinceChange: number[];
      unlockedSinceChange: number[];
    }
  | { type: "error"; message: string };
