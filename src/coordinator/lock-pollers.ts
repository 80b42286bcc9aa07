import { setTimeout as delay } from "node:timers/promises";
import { mapLimit } from "../concurrency.ts";
import type { Logger } from "../log.ts";
import { type Backend, isHashedWorkspaceTag, workspaceTag } from "../oras/index.ts";
import type { KeyedQueue } from "./keyed-queue.ts";
import { type LockTracker, readKnownLock, UNLOCKED } from "./lock-tracker.ts";

/**
 * Finds lock changes made outside this process (a ghoten CLI writing `locked-<ws>` straight into
 * the registry). One poller per watched workspace, however many watch it, and one for all
 * all-workspace watchers; each runs while someone holds a reference (a watcher or a lock waiter)
 * and stops with the last one.
 *
 * A workspace poll is one conditional GET of the lock tag (a 304 with no body while nothing
 * changed). A round of the all-workspaces poller is one tag listing plus one conditional GET per
 * lock tag present, at most POLL_PARALLELISM at a time: its cost grows with the number of locked
 * workspaces (and, on registries that cannot delete, with every workspace ever locked, whose tag
 * stays behind as the "unlocked" sentinel), not with the number of watchers.
 */

const POLL_PARALLELISM = 8;

export interface PollerDeps {
  backend: Backend;
  tracker: LockTracker;
  queue: KeyedQueue;
  intervalMs: number;
  logger: Logger;
  /** Workspace names the coordinator has seen, to name lock tags without a listing. */
  knownNames(): Iterable<string>;
  /** Called with +1 when a poller starts and -1 when it stops. */
  onCountChange(delta: number): void;
}

export interface PollerLease {
  /** Settles when the poller's first read has been applied (rejects when it failed). */
  ready: Promise<void>;
  release(): void;
}

abstract class Poller {
  refs = 0;
  readonly stop = new AbortController();
  #ready: Promise<void> | null = null;
  #readyFailed = false;
  /** The first read has been applied: the tracker holds what this poller covers. */
  isReady = false;
  #loop: Promise<void> | null = null;
  #failures = 0;
  protected readonly deps: PollerDeps;

  constructor(deps: PollerDeps) {
    this.deps = deps;
  }

  protected abstract firstRead(signal: AbortSignal): Promise<void>;
  protected abstract poll(signal: AbortSignal): Promise<void>;
  protected abstract get label(): string;

  /** The first read, started once, and again after it failed (the registry may be back). */
  ready(): Promise<void> {
    if (this.#ready === null || this.#readyFailed) {
      this.#readyFailed = false;
      const p = this.firstRead(this.stop.signal);
      p.then(
        () => {
          this.isReady = true;
        },
        () => {
          this.#readyFailed = true;
        },
      );
      this.#ready = p;
      this.#loop ??= this.#run(p);
    }
    return this.#ready;
  }

  get done(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  async #run(first: Promise<void>): Promise<void> {
    const signal = this.stop.signal;
    await first.catch(() => {});
    while (!signal.aborted) {
      try {
        await delay(this.deps.intervalMs, undefined, { signal });
      } catch {
        return; // stopped
      }
      try {
        await this.poll(signal);
        if (this.#failures > 0) this.deps.logger.info("lock polling recovered", { watch: this.label });
        this.#failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        // One line per failure streak, not one per interval.
        if (this.#failures++ === 0) {
          this.deps.logger.warn("lock polling failed; retrying at the poll interval", {
            watch: this.label,
            error: err,
          });
        }
      }
    }
  }
}

class WorkspacePoller extends Poller {
  readonly workspace: string;

  constructor(deps: PollerDeps, workspace: string) {
    super(deps);
    this.workspace = workspace;
  }

  protected get label(): string {
    return this.workspace;
  }

  // The first read runs among the workspace's operations, so it is authoritative at once and the
  // snapshot every watcher starts from is never older than a change made through the coordinator.
  protected firstRead(signal: AbortSignal): Promise<void> {
    const { queue, tracker, backend } = this.deps;
    const ws = this.workspace;
    return queue.run(
      ws,
      async () => tracker.observe(ws, await readKnownLock(backend.stateMgr(ws), tracker.get(ws), { signal })),
      {
        signal,
      },
    );
  }

  protected async poll(signal: AbortSignal): Promise<void> {
    const { queue, tracker, backend } = this.deps;
    const ws = this.workspace;
    // An operation running on the workspace reads the lock itself and records what it finds.
    if (queue.isBusy(ws)) return;
    const token = tracker.token(ws);
    const known = await readKnownLock(backend.stateMgr(ws), tracker.get(ws), { signal });
    tracker.observeIfCurrent(ws, token, known);
  }
}

class AllWorkspacesPoller extends Poller {
  /** wsTag → workspace name. */
  readonly #names = new Map<string, string>();
  /** Hashed lock tags whose workspace no listing names (a lock without a state); not looked up again. */
  readonly #unnamed = new Set<string>();

  protected get label(): string {
    return "all workspaces";
  }

  protected firstRead(signal: AbortSignal): Promise<void> {
    return this.poll(signal);
  }

  protected async poll(signal: AbortSignal): Promise<void> {
    const { backend, tracker } = this.deps;
    // Taken before the listing: a lock recorded after it must not be undone by the listing's view.
    const before = tracker.locked().map(([ws]) => [ws, tracker.token(ws)] as const);
    const tags = new Set(await backend.target.listTags({ signal }));
    for (const [ws, token] of before) {
      if (!tags.has(`locked-${workspaceTag(ws)}`)) tracker.observeIfCurrent(ws, token, UNLOCKED);
    }
    const lockTags: string[] = [];
    for (const tag of tags) if (tag.startsWith("locked-")) lockTags.push(tag.slice("locked-".length));
    const names = await this.#nameAll(lockTags, signal);
    await mapLimit(names, POLL_PARALLELISM, async (ws) => {
      if (signal.aborted) return;
      const token = tracker.token(ws);
      const known = await readKnownLock(backend.stateMgr(ws), tracker.get(ws), { signal });
      tracker.observeIfCurrent(ws, token, known);
    });
  }

  async #nameAll(wsTags: string[], signal: AbortSignal): Promise<string[]> {
    for (const name of this.deps.knownNames()) this.#note(name);
    const missing = () => wsTags.filter((t) => !this.#names.has(t) && !this.#unnamed.has(t));
    for (const t of missing()) {
      // A tag that is not hash-shaped is the name itself; a hash-shaped one may be either (B3).
      if (!isHashedWorkspaceTag(t) && workspaceTag(t) === t) this.#names.set(t, t);
    }
    if (missing().length > 0) {
      for (const name of await this.deps.backend.workspaces({ signal })) this.#note(name);
      for (const t of missing()) {
        this.#unnamed.add(t);
        this.deps.logger.debug("a lock tag names no known workspace; it is not watched", {
          tag: `locked-${t}`,
        });
      }
    }
    const present = new Set(wsTags);
    for (const t of this.#unnamed) if (!present.has(t)) this.#unnamed.delete(t);
    const out: string[] = [];
    for (const t of wsTags) {
      const name = this.#names.get(t);
      if (name !== undefined) out.push(name);
    }
    return out;
  }

  #note(name: string): void {
    const tag = workspaceTag(name);
    if (!this.#names.has(tag)) this.#names.set(tag, name);
  }
}

export class LockPollers {
  readonly #deps: PollerDeps;
  readonly #perWorkspace = new Map<string, WorkspacePoller>();
  #all: AllWorkspacesPoller | null = null;
  readonly #stopping = new Set<Promise<void>>();

  constructor(deps: PollerDeps) {
    this.#deps = deps;
  }

  get count(): number {
    return this.#perWorkspace.size + (this.#all ? 1 : 0);
  }

  /**
   * The all-workspaces poller runs and has finished a round: the tracker knows every lock at most
   * one poll interval old, so listings can take lock holders from it instead of reading each.
   */
  get allCurrent(): boolean {
    return this.#all?.isReady ?? false;
  }

  /** A reference on the poller of `workspace` (undefined: all workspaces), started if needed. */
  acquire(workspace: string | undefined): PollerLease {
    let poller: Poller;
    if (workspace === undefined) {
      if (!this.#all) {
        this.#all = new AllWorkspacesPoller(this.#deps);
        this.#deps.onCountChange(1);
      }
      poller = this.#all;
    } else {
      let p = this.#perWorkspace.get(workspace);
      if (!p) {
        p = new WorkspacePoller(this.#deps, workspace);
        this.#perWorkspace.set(workspace, p);
        this.#deps.onCountChange(1);
      }
      poller = p;
    }
    poller.refs++;
    let released = false;
    return {
      ready: poller.ready(),
      release: () => {
        if (released) return;
        released = true;
        if (--poller.refs > 0) return;
        if (workspace === undefined) {
          if (this.#all === poller) this.#all = null;
        } else if (this.#perWorkspace.get(workspace) === poller) {
          this.#perWorkspace.delete(workspace);
        }
        this.#halt(poller);
      },
    };
  }

  #halt(poller: Poller): void {
    if (poller.stop.signal.aborted) return;
    poller.stop.abort();
    this.#deps.onCountChange(-1);
    const done = poller.done.finally(() => this.#stopping.delete(done));
    this.#stopping.add(done);
  }

  /** Stops every poller and waits for their loops to end. */
  async stopAll(): Promise<void> {
    for (const p of this.#perWorkspace.values()) this.#halt(p);
    if (this.#all) this.#halt(this.#all);
    this.#perWorkspace.clear();
    this.#all = null;
    await Promise.allSettled([...this.#stopping]);
  }
}
