/**
 * A client process of the watch benchmark: opens WatchLock streams on one workspace, spread over
 * several HTTP/2 connections, and stamps each LOCKED and UNLOCKED event with the monotonic clock
 * the moment its stream yields it. Driven over IPC by bench/watch.ts (see bench/watch-processes.ts);
 * bench/watch-go is the Go counterpart.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { LockEventKind, type WatchLockResponse } from "../src/gen/tfstate/v1/state_service_pb.ts";
import { monotonicMs } from "./lib/clock.ts";
import { type StateClient, stateClient } from "./lib/connect-client.ts";
import type { ClientMessage, EventKind, OpenCommand, ParentMessage } from "./watch-protocol.ts";

/** Streams opened at once, so the server is not handed thousands of calls in one burst. */
const OPEN_BATCH = 500;
const MAX_ERRORS_REPORTED = 5;

const clients: StateClient[] = [];
const abort = new AbortController();
/** lockId → delivery times (monotonic) and times since the change (wall clock), per event kind. */
const times: Record<EventKind, Map<string, { at: number[]; sinceChange: number[] }>> = {
  locked: new Map(),
  unlocked: new Map(),
};
let watchers = 0;
let errorsReported = 0;

function send(message: ClientMessage): void {
  process.send?.(message);
}

function record(kind: EventKind, lockId: string, at: number, sinceChange: number): void {
  let d = times[kind].get(lockId);
  if (d === undefined) {
    d = { at: [], sinceChange: [] };
    times[kind].set(lockId, d);
  }
  d.at.push(at);
  d.sinceChange.push(sinceChange);
  if (d.at.length === watchers) send({ type: "delivered", kind, lockId });
}

/** Wall-clock milliseconds from the event's observe_time to now. */
function sinceChange(m: WatchLockResponse): number {
  const observed = m.observeTime ? timestampMs(m.observeTime) : Number.NaN;
  return performance.timeOrigin + performance.now() - observed;
}

async function watch(client: StateClient, workspace: string, onLive: () => void): Promise<void> {
  let failure: string;
  try {
    for await (const m of client.client.watchLock({ workspace }, { signal: abort.signal })) {
      const at = monotonicMs();
      if (m.kind === LockEventKind.SNAPSHOT_COMPLETE) onLive();
      else if (m.kind === LockEventKind.LOCKED) record("locked", m.lock?.id ?? "", at, sinceChange(m));
      else if (m.kind === LockEventKind.UNLOCKED) record("unlocked", m.lock?.id ?? "", at, sinceChange(m));
    }
    failure = "the server ended it";
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  }
  // A stream that ends while the benchmark still runs leaves a watcher that never sees the events.
  if (abort.signal.aborted) return;
  if (errorsReported++ < MAX_ERRORS_REPORTED) {
    send({ type: "error", message: `a watch stream failed: ${failure}` });
  }
}

async function open(cmd: OpenCommand): Promise<void> {
  const started = monotonicMs();
  watchers = cmd.watchers;
  for (let i = 0; i < cmd.connections; i++) clients.push(stateClient(cmd.url));
  for (let first = 0; first < cmd.watchers; first += OPEN_BATCH) {
    const batch = Math.min(OPEN_BATCH, cmd.watchers - first);
    let live = 0;
    await new Promise<void>((resolve) => {
      for (let i = first; i < first + batch; i++) {
        void watch(clients[i % clients.length] as StateClient, cmd.workspace, () => {
          if (++live === batch) resolve();
        });
      }
    });
  }
  send({ type: "ready", openMs: monotonicMs() - started });
}

process.on("message", (message: ParentMessage) => {
  switch (message.type) {
    case "open":
      open(message).catch((err: unknown) => send({ type: "error", message: String(err) }));
      break;
    case "collect": {
      const none = { at: [], sinceChange: [] };
      const locked = times.locked.get(message.lockId) ?? none;
      const unlocked = times.unlocked.get(message.lockId) ?? none;
      times.locked.delete(message.lockId);
      times.unlocked.delete(message.lockId);
      send({
        type: "times",
        lockId: message.lockId,
        locked: locked.at,
        unlocked: unlocked.at,
        lockedSinceChange: locked.sinceChange,
        unlockedSinceChange: unlocked.sinceChange,
      });
      break;
    }
    case "close":
      abort.abort();
      for (const c of clients) c.close();
      process.disconnect();
      break;
  }
});
// The benchmark went away: nothing left to do.
process.on("disconnect", () => {
  abort.abort();
  for (const c of clients) c.close();
  process.exit(0);
});
