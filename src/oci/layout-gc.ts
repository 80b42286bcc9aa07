/**
 * Garbage collection of a layout, automatic and incremental. Every index.json change reports the
 * blobs whose reference count fell to zero (layout-refs.ts); they are removed in the background a
 * short delay later, so a burst of writes costs one collection, and a reader that read index.json
 * just before a change still finds the blobs it was told about. Past 64 such blobs, the oldest go
 * at once: disk use stays within a constant of what is referenced, whatever the write rate. At open, and whenever the graph
 * was incomplete, one scan of blobs/sha256 finds what a crash or another tool left.
 *
 * Safety rests on decisions that are synchronous with the in-memory state: a blob is taken only
 * when its count is zero, it is not pinned (layout-pins.ts), and the index.json that dropped its
 * last reference is already durable (counts change only after the rename is fsynced). A push of
 * the same content while its removal is under way waits for the removal, then writes it anew.
 * Removal is not fsynced: a crash that undoes one leaves an unreferenced blob for the next scan.
 */
import { metrics } from "@opentelemetry/api";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.ts";
import type { CallContext } from "./call-context.ts";
import type { LayoutBlobStore } from "./layout-blobs.ts";
import { reachableBlobs } from "./layout-graph.ts";
import type { LayoutIndex } from "./layout-index.ts";
import type { LayoutLogger } from "./layout-lock.ts";
import { BlobPins } from "./layout-pins.ts";
import type { LayoutReferences, RefChanges } from "./layout-refs.ts";

export interface LayoutGcSettings {
  /**
   * How long a blob stays after losing its last reference before the background collection takes
   * it (default 200 ms): drops within that window are collected together, and readers that were
   * just told about the blob have that long to open it.
   */
  delayMs?: number | undefined;
  /**
   * Unreferenced blobs found at open that are younger than this (by mtime) are removed only once
   * they are that old (default 10 minutes): the lock keeps other writers out, this is the margin for
   * tools that do not take it.
   */
  startGraceMs?: number | undefined;
  /**
   * The longest a blob pushed here is kept waiting for a manifest to name it when its caller
   * neither pushes one nor gives up (default 15 minutes).
   */
  pinLeaseMs?: number | undefined;
}

export interface LayoutGcResult {
  /** Blobs removed, with their sizes. */
  removed: Array<{ digest: string; size: number }>;
  freedBytes: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  keptYoung: number;
  /** Unreferenced blobs kept because a push in this process waits for its manifest. */
  keptPinned: number;
  /** Blobs index.json reaches. */
  reachable: number;
}

export interface LayoutGcStats {
  /** Background collections that ran. */
  runs: number;
  removedBlobs: number;
  freedBytes: number;
  /** Blobs that lost their last reference and wait for the next collection. */
  pending: number;
  /** Pushed blobs waiting for a manifest to name them. */
  pinnedPushes: number;
  /** Why automatic collection is suspended, if it is. */
  suspended: string | undefined;
}

const DEFAULTS = { delayMs: 200, startGraceMs: 10 * 60_000, pinLeaseMs: 15 * 60_000 } as const;
/** Removals decided (and run) together; each batch re-checks counts and pins when it starts. */
const BATCH = 64;
/**
 * Dropped blobs waiting for the delay are capped: past PENDING_LIMIT, a run starts at once and takes
 * all but the PENDING_KEPT youngest, so disk use stays within a constant of what is referenced
 * however fast writes come (the delay then shelters readers of the last PENDING_KEPT drops), and
 * each such run frees at least PENDING_LIMIT - PENDING_KEPT blobs.
 */
const PENDING_LIMIT = 64;
const PENDING_KEPT = 32;

export type ResolvedGcSettings = { -readonly [K in keyof typeof DEFAULTS]: number };

export function resolveGcSettings(settings: LayoutGcSettings | undefined): ResolvedGcSettings {
  const out: ResolvedGcSettings = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
    const value = settings?.[key];
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < 0) {
      throw new InvalidArgumentError(`gc.${key} must be a number of milliseconds >= 0, got ${value}`);
    }
    out[key] = value;
  }
  return out;
}

const meter = metrics.getMeter("oci-tfstate/oci-layout");
const removedCounter = meter.createCounter("oci_tfstate.layout.gc.removed_blobs", {
  description: "Blobs the layout store's garbage collection removed",
});
const freedCounter = meter.createCounter("oci_tfstate.layout.gc.freed_bytes", {
  description: "Bytes the layout store's garbage collection freed",
  unit: "By",
});

interface Removal {
  digest: string;
  /** Bytes freed, or null when nothing was removed (already gone, or the unlink failed). */
  size: number | null;
}

export class LayoutCollector {
  readonly pins: BlobPins;
  private readonly blobs: LayoutBlobStore;
  private readonly refs: LayoutReferences;
  private readonly logger: LayoutLogger | undefined;
  private readonly location: string;
  private readonly settings: ResolvedGcSettings;
  /** Digests that lost their last reference, with when (0: due at once). */
  private readonly candidates = new Map<string, number>();
  private readonly removing = new Map<string, Promise<void>>();
  /** Unreferenced blobs found by a scan, too young to take yet. */
  private deferred: Array<{ digest: string; due: number }> = [];
  private deferredTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** When the last background run started: runs are at least the delay apart. */
  private lastRunAt = Number.NEGATIVE_INFINITY;
  private ready = false;
  private closed = false;
  /** A scan of blobs/sha256 is owed: at open, and after the graph was incomplete. */
  private needsScan = true;
  private warnedSuspended: string | undefined;
  private readonly counters = { runs: 0, removedBlobs: 0, freedBytes: 0 };

  constructor(opts: {
    blobs: LayoutBlobStore;
    refs: LayoutReferences;
    logger: LayoutLogger | undefined;
    location: string;
    settings: ResolvedGcSettings;
  }) {
    this.blobs = opts.blobs;
    this.refs = opts.refs;
    this.logger = opts.logger;
    this.location = opts.location;
    this.settings = opts.settings;
    this.pins = new BlobPins(opts.settings.pinLeaseMs, (digest) => {
      if (this.refs.count(digest) === 0) this.addCandidate(digest, Date.now());
    });
  }

  /** The reference counts are loaded: collection may run (first the scan at open). */
  start(): void {
    this.ready = true;
    this.schedule();
  }

  /** Resolves once an in-flight removal of `digest` has finished (a push must not race it). */
  settled(digest: string): Promise<void> | undefined {
    return this.removing.get(digest);
  }

  /** An index.json change is durable and counted: releases pins, queues what lost its references. */
  committed(changes: RefChanges): void {
    for (const digest of changes.gained) this.pins.referenced(digest);
    const now = Date.now();
    for (const digest of changes.dropped) this.addCandidate(digest, now);
    if (this.needsScan) this.schedule();
  }

  stats(): LayoutGcStats {
    return {
      ...this.counters,
      pending: this.candidates.size + this.deferred.length,
      pinnedPushes: this.pins.pushCount,
      suspended: this.refs.incompleteReason(),
    };
  }

  /** Runs what is pending now, without the delay, until nothing is (deferred young blobs aside). */
  async drain(): Promise<void> {
    while (this.ready) {
      if (this.running !== undefined) {
        await this.running;
        continue;
      }
      const scanOwed = this.needsScan && this.refs.incompleteReason() === undefined;
      if (this.candidates.size === 0 && !scanOwed) return;
      await this.kick(true);
    }
  }

  /** Final collection: no manifest can land any more, so push pins end. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.deferredTimer);
    this.pins.releaseAll();
    await this.drain();
  }

  /**
   * A full collection on demand: walks index.json on disk (refusing, with nothing removed, when a
   * manifest it names is missing or damaged), then removes every blob it does not reach that is
   * older than `graceMs` and not pinned.
   */
  async collectAll(index: LayoutIndex, graceMs: number, call: CallContext): Promise<LayoutGcResult> {
    if (!this.ready) {
      throw new FailedPreconditionError(
        `garbage collection is off for layout ${this.location}: its manifest graph could not be loaded (see the log)`,
      );
    }
    // A manifest of this snapshot that is no longer referenced may be collected meanwhile: skipped.
    const reachable = await reachableBlobs(
      this.blobs,
      index,
      call,
      (digest) => this.refs.count(digest) === 0,
    );
    const cutoffMs = Date.now() - graceMs;
    const result: LayoutGcResult = {
      removed: [],
      freedBytes: 0,
      keptYoung: 0,
      keptPinned: 0,
      reachable: reachable.size,
    };
    const due: string[] = [];
    for (const blob of await this.blobs.list()) {
      if (reachable.has(blob.digest)) continue;
      if (blob.mtimeMs > cutoffMs) result.keptYoung++;
      else due.push(blob.digest);
    }
    for (let at = 0; at < due.length; at += BATCH) {
      call.check();
      const batch: Array<Promise<Removal>> = [];
      for (const digest of due.slice(at, at + BATCH)) {
        if (this.pins.isPinned(digest)) result.keptPinned++;
        const removal = this.take(digest);
        if (removal !== undefined) batch.push(removal);
      }
      for (const { digest, size } of await Promise.all(batch)) {
        if (size === null) continue;
        result.removed.push({ digest, size });
        result.freedBytes += size;
      }
    }
    this.count(result.removed.length, result.freedBytes);
    return result;
  }

  private addCandidate(digest: string, since: number): void {
    if (!this.candidates.has(digest)) this.candidates.set(digest, since);
    if (this.candidates.size > PENDING_LIMIT && this.timer !== undefined) void this.kick(false);
    else this.schedule();
  }

  private schedule(): void {
    if (!this.ready || this.closed || this.timer !== undefined || this.running !== undefined) return;
    if (this.candidates.size === 0 && !this.needsScan) return;
    let wait = 0;
    if (!this.needsScan && this.candidates.size <= PENDING_LIMIT) {
      // Insertion order is drop order (a scan's entries are due at once anyway).
      const [first] = this.candidates.values();
      const due = Math.max(first ?? 0, this.lastRunAt) + this.settings.delayMs;
      wait = Math.max(0, due - Date.now());
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.kick(false);
    }, wait);
    this.timer.unref();
  }

  private kick(drain: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running ??= (async () => {
      try {
        await this.run(drain);
      } catch (err) {
        this.logger?.warn("layout garbage collection failed; it runs again after the next change", {
          layout: this.location,
          error: err instanceof Error ? err.message : String(err),
        });
      } finally {
        this.running = undefined;
        this.schedule();
      }
    })();
    return this.running;
  }

  private async run(drain: boolean): Promise<void> {
    const suspended = this.refs.incompleteReason();
    if (suspended !== undefined) {
      // What is dropped meanwhile is found by the scan once the graph is whole again.
      this.candidates.clear();
      this.needsScan = true;
      if (this.warnedSuspended !== suspended) {
        this.warnedSuspended = suspended;
        this.logger?.warn("layout garbage collection is suspended: the blobs a manifest needs are unknown", {
          layout: this.location,
          reason: suspended,
        });
      }
      return;
    }
    this.warnedSuspended = undefined;
    const started = Date.now();
    this.lastRunAt = started;
    if (this.needsScan) await this.scan();
    const cutoff = drain ? Number.POSITIVE_INFINITY : Date.now() - this.settings.delayMs;
    let overflow = this.candidates.size > PENDING_LIMIT ? this.candidates.size - PENDING_KEPT : 0;
    const due: string[] = [];
    for (const [digest, since] of this.candidates) {
      if (since > cutoff && overflow <= 0) continue;
      overflow--;
      due.push(digest);
      this.candidates.delete(digest);
    }
    let removed = 0;
    let freed = 0;
    for (let at = 0; at < due.length; at += BATCH) {
      const batch: Array<Promise<Removal>> = [];
      for (const digest of due.slice(at, at + BATCH)) {
        // Pinned ones come back as candidates when their pin ends.
        const removal = this.take(digest);
        if (removal !== undefined) batch.push(removal);
      }
      for (const { size } of await Promise.all(batch)) {
        if (size === null) continue;
        removed++;
        freed += size;
      }
    }
    this.counters.runs++;
    this.count(removed, freed);
    if (removed > 0) {
      this.logger?.debug?.("layout garbage collection freed blobs", {
        layout: this.location,
        removed,
        freedBytes: freed,
        durationMs: Date.now() - started,
      });
    }
  }

  /** Starts removing `digest` if nothing references or pins it; synchronous up to the unlink. */
  private take(digest: string): Promise<Removal> | undefined {
    if (this.refs.count(digest) > 0 || this.pins.isPinned(digest) || this.removing.has(digest)) {
      return undefined;
    }
    const removal = this.removeFile(digest);
    this.removing.set(
      digest,
      removal.then(() => {
        this.removing.delete(digest);
      }),
    );
    return removal;
  }

  private async removeFile(digest: string): Promise<Removal> {
    try {
      const st = await this.blobs.stat(digest);
      if (st === null) return { digest, size: null };
      await this.blobs.remove(digest);
      return { digest, size: st.size };
    } catch (err) {
      // Left for the scan at the next open.
      this.logger?.warn("layout garbage collection could not remove a blob", {
        layout: this.location,
        digest,
        error: err instanceof Error ? err.message : String(err),
      });
      return { digest, size: null };
    }
  }

  /** Every unreferenced, unpinned blob file: due now when old enough, else deferred until it is. */
  private async scan(): Promise<void> {
    this.needsScan = false;
    const now = Date.now();
    const cutoff = now - this.settings.startGraceMs;
    let listed: Array<{ digest: string; mtimeMs: number }>;
    try {
      listed = await this.blobs.list(
        (digest) => this.refs.count(digest) === 0 && !this.pins.isPinned(digest),
      );
    } catch (err) {
      this.logger?.warn(
        "layout garbage collection could not list the blobs; it tries again at the next open",
        {
          layout: this.location,
          error: err instanceof Error ? err.message : String(err),
        },
      );
      return;
    }
    const young: Array<{ digest: string; due: number }> = [];
    for (const blob of listed) {
      if (blob.mtimeMs <= cutoff) this.candidates.set(blob.digest, 0);
      else young.push({ digest: blob.digest, due: blob.mtimeMs + this.settings.startGraceMs });
    }
    if (young.length > 0) {
      this.deferred.push(...young);
      this.armDeferred();
    }
  }

  private armDeferred(): void {
    clearTimeout(this.deferredTimer);
    this.deferredTimer = undefined;
    if (this.deferred.length === 0 || this.closed) return;
    let due = Number.POSITIVE_INFINITY;
    for (const d of this.deferred) due = Math.min(due, d.due);
    this.deferredTimer = setTimeout(
      () => {
        const now = Date.now();
        const ripe = this.deferred.filter((d) => d.due <= now);
        this.deferred = this.deferred.filter((d) => d.due > now);
        for (const { digest } of ripe) if (!this.candidates.has(digest)) this.candidates.set(digest, 0);
        this.armDeferred();
        this.schedule();
      },
      Math.max(0, due - Date.now()),
    );
    this.deferredTimer.unref();
  }

  private count(removed: number, freed: number): void {
    if (removed === 0) return;
    this.counters.removedBlobs += removed;
    this.counters.freedBytes += freed;
    removedCounter.add(removed);
    freedCounter.add(freed);
  }
}
