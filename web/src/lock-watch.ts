/**
 * Live lock status through WatchLock: the stream pushes the status at its start and every change
 * after, so a lock taken by `tofu apply` shows without a reload or a poll. A dropped stream is
 * opened again (1 s, doubling to 15 s) and its fresh snapshot replaces what was known.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { LockEventKind, type LockInfo } from "@oci-tfstate/client/web";
import { useEffect, useState } from "preact/hooks";
import { client, describe, type Problem } from "./api.ts";

export interface LockView {
  /** Locks by workspace name: present when locked. */
  locks: ReadonlyMap<string, LockInfo>;
  /** The snapshot has arrived and changes are being pushed. */
  live: boolean;
  /** Why the stream is down. */
  problem: Problem | undefined;
  /** The stream is being opened again (not when a person must act: sign in, a missing workspace). */
  retrying: boolean;
  /** Bumped on every change, for views that refresh details when a lock goes. */
  changes: number;
  /** The last workspace an event was about. */
  lastChanged: string | undefined;
}

const INITIAL: LockView = {
  locks: new Map(),
  live: false,
  problem: undefined,
  retrying: false,
  changes: 0,
  lastChanged: undefined,
};
const MAX_BACKOFF_MS = 15_000;

/** Watches one workspace (`workspace` set) or all of them (empty); `session` restarts it. */
export function useLockWatch(workspace: string, session: unknown): LockView {
  const [view, setView] = useState<LockView>(INITIAL);
  useEffect(() => {
    const stop = new AbortController();
    let backoff = 1000;
    let timer: number | undefined;
    const run = async () => {
      let snapshot = new Map<string, LockInfo>();
      let live = false;
      try {
        for await (const ev of client.state.watchLock({ workspace }, { signal: stop.signal })) {
          if (ev.kind === LockEventKind.SNAPSHOT) {
            if (ev.lock) snapshot.set(ev.workspace, ev.lock);
            continue;
          }
          if (ev.kind === LockEventKind.SNAPSHOT_COMPLETE) {
            live = true;
            backoff = 1000;
            const locks = snapshot;
            setView((v) => ({
              locks,
              live: true,
              problem: undefined,
              retrying: false,
              changes: v.changes + 1,
              lastChanged: "",
            }));
            continue;
          }
          const next = new Map(snapshot);
          if (ev.kind === LockEventKind.LOCKED && ev.lock) next.set(ev.workspace, ev.lock);
          else if (ev.kind === LockEventKind.UNLOCKED) next.delete(ev.workspace);
          snapshot = next;
          if (live) {
            setView((v) => ({
              locks: next,
              live: true,
              problem: undefined,
              retrying: false,
              changes: v.changes + 1,
              lastChanged: ev.workspace,
            }));
          }
        }
        throw new ConnectError("the server ended the stream", Code.Unavailable);
      } catch (err) {
        if (stop.signal.aborted) return;
        const problem = describe(err);
        // Signing in, or a workspace that is not there (or not for this caller), needs a person.
        const retrying = problem.kind === "other" && ConnectError.from(err).code !== Code.NotFound;
        setView((v) => ({ ...v, live: false, problem, retrying }));
        if (!retrying) return;
        timer = window.setTimeout(run, backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    };
    void run();
    return () => {
      stop.abort();
      window.clearTimeout(timer);
    };
  }, [workspace, session]);
  return view;
}
