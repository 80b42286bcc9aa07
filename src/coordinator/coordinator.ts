import { randomUUID } from "node:crypto";
import type { CallOptions } from "../call-options.ts";
import { mapLimit } from "../concurrency.ts";
import { InvalidArgumentError, NotFoundError, UnavailableError } from "../errors.ts";
import { type Logger, noopLogger } from "../log.ts";
import { ensureDefaultWorkspace } from "../oras/default-workspace.ts";
import {
  type Backend,
  DEFAULT_WORKSPACE,
  emptyLockInfo,
  type LockInfo,
  type PreparedState,
  type PutResult,
  type StateManager,
} from "../oras/index.ts";
import { assertWriteAllowed } from "./fencing.ts";
import { KeyedQueue } from "./keyed-queue.ts";
import { LockHub } from "./lock-hub.ts";
import { LockPollers } from "./lock-pollers.ts";
import { LockService } from "./lock-service.ts";
import { type KnownLock, LockTracker, publicState, readKnownLock, UNLOCKED } from "./lock-tracker.ts";
import { type CoordinatorMetrics, createCoordinatorMetrics } from "./metrics.ts";
import type {
  Coordinator,
  CoordinatorStats,
  DeleteWorkspaceOptions,
  LockEvent,
  LockOptions,
  LockResult,
  LockState,
  LockWatch,
  UnlockOptions,
  WorkspaceSummary,
  WriteOptions,
} from "./types.ts";
import { WatchStream } from "./watch-stream.ts";

export interface CoordinatorOptions {
  backend: Backend;
  logger?: Logger;
  /** How often a watched workspace's lock is read for changes made outside the service. Default 2 s. */
  watchPollIntervalMs?: number;
  /** Longest a Lock call may wait for a held lock. Default 10 min. */
  maxLockWaitMs?: number;
  /** Events a WatchLock stream buffers before it coalesces per workspace. Default 64. */
  watchBufferSize?: number;
  /** Workspaces described at once by listings. Default 8. */
  describeParallelism?: number;
  /** Clock (ms since the epoch) for event times, default lock times and lease checks. */
  now?: () => number;
}

export const DEFAULT_WATCH_POLL_INTERVAL_MS = 2000;
export const DEFAULT_MAX_LOCK_WAIT_MS = 10 * 60 * 1000;

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0)
    throw new InvalidArgumentError(`${name} must be a positive number, got ${String(v)}`);
  return v;
}

/** Strips what only the coordinator reads, so the core gets plain call options. */
function callOptions(opts: CallOptions | undefined): CallOptions {
  return { signal: opts?.signal, deadline: opts?.deadline };
}

export function createCoordinator(options: CoordinatorOptions): Coordinator {
  return new ServiceCoordinator(options);
}

class ServiceCoordinator implements Coordinator {
  readonly #backend: Backend;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #bufferSize: number;
  readonly #parallelism: number;
  readonly #metrics: CoordinatorMetrics;
  readonly #queue = new KeyedQueue();
  readonly #hub = new LockHub();
  readonly #tracker: LockTracker;
  readonly #pollers: LockPollers;
  readonly #locks: LockService;
  readonly #streams = new Set<WatchStream>();
  readonly #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;

  constructor(o: CoordinatorOptions) {
    this.#backend = o.backend;
    this.#logger = o.logger ?? noopLogger;
    this.#now = o.now ?? Date.now;
    const interval = positive("watchPollIntervalMs", o.watchPollIntervalMs, DEFAULT_WATCH_POLL_INTERVAL_MS);
    const maxLockWaitMs = positive("maxLockWaitMs", o.maxLockWaitMs, DEFAULT_MAX_LOCK_WAIT_MS);
    this.#bufferSize = Math.floor(positive("watchBufferSize", o.watchBufferSize, 64));
    this.#parallelism = Math.floor(positive("describeParallelism", o.describeParallelism, 8));
    this.#metrics = createCoordinatorMetrics();
    this.#tracker = new LockTracker(this.#hub, this.#now, (ws) => this.#locks.freed(ws));
    this.#pollers = new LockPollers({
      backend: this.#backend,
      tracker: this.#tracker,
      queue: this.#queue,
      intervalMs: interval,
      logger: this.#logger,
      knownNames: () => this.#tracker.workspaces(),
      onCountChange: (d) => this.#metrics.activePollers.add(d),
    });
    this.#locks = new LockService({
      backend: this.#backend,
      queue: this.#queue,
      tracker: this.#tracker,
      pollers: this.#pollers,
      metrics: this.#metrics,
      logger: this.#logger,
      now: this.#now,
      maxLockWaitMs,
    });
  }

  /** Refuses calls after close() and keeps track of running ones, so close() can let them finish. */
  #run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new UnavailableError("the state service is shutting down"));
    const p = (async () => fn())();
    this.#inflight.add(p);
    const forget = () => this.#inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /**
   * The workspace's state manager. Getting it is where a name enters the coordinator: the core
   * refuses a bad name here (InvalidArgumentError naming the rule), before any queue turn or
   * registry request, and checks each name only once (it keeps the managers). Every entry point
   * that takes a name calls it first; nothing else checks names.
   */
  #mgr(ws: string): StateManager {
    return this.#backend.stateMgr(ws);
  }

  // ---- state ----

  getState(ws: string, opts?: CallOptions) {
    return this.#run(() => this.#mgr(ws).get(callOptions(opts)));
  }

  stateHead(ws: string, opts?: CallOptions) {
    return this.#run(() => this.#mgr(ws).head(callOptions(opts)));
  }

  openRead(ws: string, opts?: CallOptions) {
    return this.#run(() => this.#mgr(ws).openRead(callOptions(opts)));
  }

  putState(ws: string, data: Uint8Array, opts?: WriteOptions) {
    return this.#write(ws, opts, (mgr, o) => mgr.prepare({ bytes: data }, o));
  }

  putStateStream(ws: string, stream: AsyncIterable<Uint8Array>, opts?: WriteOptions) {
    return this.#write(ws, opts, (mgr, o) => mgr.prepare({ stream }, o));
  }

  deleteState(ws: string, opts?: WriteOptions) {
    return this.#fenced(ws, opts, (mgr, o) => mgr.delete(o));
  }

  /** The version's blob is stored already: reading it and moving the tags all happen in the turn. */
  restoreVersion(ws: string, version: number, opts?: WriteOptions): Promise<PutResult> {
    return this.#fenced(ws, opts, async (mgr, o) => mgr.commit(await mgr.prepareRestore(version, o), o));
  }

  listVersions(ws: string, opts?: CallOptions) {
    return this.#run(() => this.#mgr(ws).listVersions(callOptions(opts)));
  }

  getVersion(ws: string, version: number, opts?: CallOptions) {
    return this.#run(() => this.#mgr(ws).getVersion(version, callOptions(opts)));
  }

  /**
   * A state write in two parts. The body is received, checked and pushed as a layer blob first,
   * outside the workspace's queue: a blob is content-addressed and no tag names it yet, so it needs
   * no turn, and a client that sends slowly (or stops) holds up nobody else on the workspace. Only
   * the commit (the fencing check, then the tag moves) takes a turn. A write the fence refuses has
   * still uploaded its blob, which stays unreferenced; so does one whose caller gives up while it
   * waits for its turn. Writes commit in the order their bodies were ready, not the order they
   * arrived in; each commit decides its version number in its turn, so versions never collide.
   *
   * The lock is not checked before the upload: what the coordinator last saw of it may be stale (a
   * ghoten CLI can unlock behind its back), and reading it then would cost a request on every write.
   */
  #write(
    ws: string,
    opts: WriteOptions | undefined,
    prepare: (mgr: StateManager, o: CallOptions) => Promise<PreparedState>,
  ): Promise<PutResult> {
    return this.#run(async () => {
      const prepared = await prepare(this.#mgr(ws), callOptions(opts));
      return this.#inTurn(ws, opts, (mgr, o) => mgr.commit(prepared, o));
    });
  }

  /** A write or delete that does all its work in the workspace's turn, after the fencing check. */
  #fenced<T>(
    ws: string,
    opts: WriteOptions | undefined,
    write: (mgr: StateManager, o: CallOptions) => Promise<T>,
  ): Promise<T> {
    return this.#run(() => {
      this.#mgr(ws);
      return this.#inTurn(ws, opts, write);
    });
  }

  /**
   * Runs `write` in the workspace's queue, after the fencing check.
   *
   * The check reads the lock tag every time rather than trusting what the coordinator last saw:
   * a ghoten CLI can lock the workspace behind the service's back, and a write must respect that.
   * Knowing the digest of the lock it last saw (its own, after a Lock), the coordinator makes the
   * read conditional, so in steady state it is one GET answered 304 with no body (or 404 when the
   * workspace is unlocked): one request on top of the write's three. What it cannot close is the
   * gap between that read and the write: the registry has no compare-and-swap, so a foreign lock
   * landing in those milliseconds is not seen (docs/oras-wire-format.md §4.2). Inside the process
   * the gap does not exist, because lock, unlock and writes on a workspace take turns.
   */
  #inTurn<T>(
    ws: string,
    opts: WriteOptions | undefined,
    write: (mgr: StateManager, o: CallOptions) => Promise<T>,
  ): Promise<T> {
    return this.#queue.run(
      ws,
      async () => {
        const known = await this.#locks.verify(ws, callOptions(opts));
        try {
          assertWriteAllowed(ws, known, opts?.lockId);
        } catch (err) {
          this.#metrics.fencedWrites.add(1);
          throw err;
        }
        return write(this.#mgr(ws), callOptions(opts));
      },
      { ...callOptions(opts), what: `write to workspace ${JSON.stringify(ws)}` },
    );
  }

  // ---- locks ----

  lock(ws: string, info: LockInfo, opts?: LockOptions): Promise<LockResult> {
    return this.#run(() => {
      this.#mgr(ws);
      const full: LockInfo = {
        ...emptyLockInfo(),
        ...info,
        id: info.id || randomUUID(),
        created: info.created || new Date(this.#now()).toISOString(),
      };
      return this.#locks.lock(ws, full, opts);
    });
  }

  unlock(ws: string, id: string, opts?: UnlockOptions): Promise<LockInfo | null> {
    return this.#run(() => {
      this.#mgr(ws);
      return this.#locks.unlock(ws, id, opts);
    });
  }

  getLock(ws: string, opts?: CallOptions): Promise<LockState> {
    return this.#run(async () => publicState(await this.#readLockOutside(ws, opts)));
  }

  /** A lock read outside the workspace's queue; a newer status recorded meanwhile wins. */
  async #readLockOutside(ws: string, opts: CallOptions | undefined): Promise<KnownLock> {
    const token = this.#tracker.token(ws);
    const known = await readKnownLock(this.#mgr(ws), this.#tracker.get(ws), callOptions(opts));
    if (this.#tracker.observeIfCurrent(ws, token, known)) return known;
    return this.#tracker.get(ws) ?? known;
  }

  watchLock(ws: string | undefined, signal?: AbortSignal): LockWatch {
    if (ws !== undefined) this.#mgr(ws);
    const release: (() => void)[] = [];
    const stream = new WatchStream(ws, this.#bufferSize, (s) => {
      this.#hub.remove(s);
      if (this.#streams.delete(s)) this.#metrics.activeWatchers.add(-1);
      for (const r of release) r();
    });
    if (this.#closing || signal?.aborted) {
      stream.end();
      return stream;
    }
    this.#streams.add(stream);
    this.#metrics.activeWatchers.add(1);
    if (signal) {
      const onAbort = () => stream.end();
      signal.addEventListener("abort", onAbort, { once: true });
      release.push(() => signal.removeEventListener("abort", onAbort));
    }
    const lease = this.#pollers.acquire(ws);
    release.push(lease.release);
    lease.ready.then(
      () => {
        if (stream.ended) return;
        // Snapshot and subscription in one synchronous step: no change can fall between them.
        for (const e of this.#snapshot(ws)) stream.push(e);
        stream.push({ kind: "snapshot_complete", observedAt: this.#now() });
        this.#hub.add(stream);
      },
      (err: unknown) => stream.fail(err),
    );
    return stream;
  }

  #snapshot(ws: string | undefined): LockEvent[] {
    const observedAt = this.#now();
    const event = (workspace: string, k: KnownLock): LockEvent =>
      k.state === "locked"
        ? { kind: "snapshot", workspace, info: k.info, generation: k.generation, observedAt }
        : { kind: "snapshot", workspace, info: undefined, generation: 0, observedAt };
    if (ws !== undefined) return [event(ws, this.#tracker.get(ws) ?? UNLOCKED)];
    return this.#tracker
      .locked()
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, k]) => event(name, k));
  }

  // ---- workspaces ----

  listWorkspaceNames(opts?: CallOptions): Promise<string[]> {
    return this.#run(() => this.#backend.workspaces(callOptions(opts)));
  }

  describeWorkspaces(names: readonly string[], opts?: CallOptions): Promise<WorkspaceSummary[]> {
    return this.#run(() => {
      for (const n of names) this.#mgr(n);
      return mapLimit(names, this.#parallelism, (n) => this.#describe(n, opts));
    });
  }

  listWorkspaces(opts?: CallOptions): Promise<WorkspaceSummary[]> {
    return this.#run(async () => {
      const names = await this.#backend.workspaces(callOptions(opts));
      return mapLimit(names, this.#parallelism, (n) => this.#describe(n, opts));
    });
  }

  getWorkspace(ws: string, opts?: CallOptions): Promise<WorkspaceSummary> {
    return this.#run(async () => {
      this.#mgr(ws);
      const summary = await this.#describe(ws, opts);
      if (!summary.exists) throw new NotFoundError(`workspace ${JSON.stringify(ws)} does not exist`);
      return summary;
    });
  }

  async #describe(ws: string, opts: CallOptions | undefined): Promise<WorkspaceSummary> {
    const lockRead = this.#pollers.allCurrent
      ? Promise.resolve(this.#tracker.get(ws) ?? UNLOCKED)
      : this.#readLockOutside(ws, opts);
    const [info, lock] = await Promise.all([
      this.#backend.describeWorkspace(ws, callOptions(opts)),
      lockRead,
    ]);
    return { ...info, lock: lock.state === "locked" ? lock.info : undefined };
  }

  createWorkspace(ws: string, opts?: CallOptions): Promise<WorkspaceSummary> {
    return this.#run(async () => {
      this.#mgr(ws);
      await this.#queue.run(ws, () => this.#backend.createWorkspace(ws, callOptions(opts)), {
        ...callOptions(opts),
        what: `creating workspace ${JSON.stringify(ws)}`,
      });
      return this.#describe(ws, opts);
    });
  }

  deleteWorkspace(ws: string, opts?: DeleteWorkspaceOptions): Promise<void> {
    return this.#run(() => {
      this.#mgr(ws);
      if (ws === DEFAULT_WORKSPACE)
        throw new InvalidArgumentError('the "default" workspace cannot be deleted');
      return this.#queue.run(
        ws,
        async () => {
          // Without force, the core refuses a lock held by anyone but lockId and a state that still
          // manages resources (as Terraform's `workspace delete` without -force).
          await this.#backend.deleteWorkspace(ws, opts?.force ?? false, {
            ...callOptions(opts),
            lockId: opts?.lockId,
          });
          this.#tracker.observe(ws, UNLOCKED);
        },
        { ...callOptions(opts), what: `deleting workspace ${JSON.stringify(ws)}` },
      );
    });
  }

  // ---- service ----

  ensureDefaultWorkspace(opts?: CallOptions): Promise<boolean> {
    return this.#run(() =>
      this.#queue.run(
        DEFAULT_WORKSPACE,
        () => ensureDefaultWorkspace(this.#backend.target, callOptions(opts)),
        {
          ...callOptions(opts),
          what: "creating the default workspace",
        },
      ),
    );
  }

  ready(opts?: CallOptions): Promise<void> {
    return this.#run(() => this.#backend.target.ping(callOptions(opts)));
  }

  stats(): CoordinatorStats {
    return {
      watchers: this.#streams.size,
      pollers: this.#pollers.count,
      lockWaiters: this.#locks.waiterCount,
      queuedOperations: this.#queue.size,
    };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const s of [...this.#streams]) s.end();
      this.#locks.rejectAll(
        new UnavailableError("the state service is shutting down; the lock wait was abandoned"),
      );
      await this.#pollers.stopAll();
      await Promise.allSettled([...this.#inflight]);
      await this.#backend.close();
    })();
    return this.#closing;
  }
}
