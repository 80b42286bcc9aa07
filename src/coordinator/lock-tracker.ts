import type { CallOptions } from "../call-options.ts";
import { UnavailableError } from "../errors.ts";
import type { HeldLockStatus, LockRead, StateManager } from "../oras/index.ts";
import type { LockHub } from "./lock-hub.ts";
import type { HeldLock, LockState } from "./types.ts";

/**
 * What the coordinator last saw of a workspace's lock tag, with the digest for conditional reads
 * and the core's status it was read as (`read`), which the core takes back instead of reading the
 * tag again when the coordinator has just verified it.
 */
export type KnownLock = (
  | ({ state: "locked"; digest: string } & HeldLock)
  /** `digest` is the sentinel's on registries that cannot delete, null when the tag is absent or unknown. */
  | { state: "unlocked"; digest: string | null }
) & { read: LockRead };

export const UNLOCKED: KnownLock = knownFromStatus({ state: "unlocked", digest: null });

/** Converts a full (not `unchanged`) status read from the core. */
export function knownFromStatus(read: HeldLockStatus): KnownLock & { state: "locked" };
export function knownFromStatus(read: LockRead): KnownLock;
export function knownFromStatus(read: LockRead): KnownLock {
  switch (read.state) {
    case "unlocked":
      return { state: "unlocked", digest: read.digest, read };
    case "corrupt":
      return {
        state: "locked",
        info: read.info,
        generation: 0,
        leaseExpiresAt: null,
        corrupt: true,
        digest: read.digest,
        read,
      };
    case "locked":
      return {
        state: "locked",
        info: read.info,
        generation: read.generation,
        leaseExpiresAt: read.leaseExpiresAt,
        corrupt: false,
        digest: read.digest,
        read,
      };
  }
}

/**
 * Reads the lock tag, conditionally when `known` has a digest: a 304 (no body) in steady state,
 * or a 404 when the tag is absent. One request.
 */
export async function readKnownLock(
  mgr: StateManager,
  known: KnownLock | undefined,
  opts?: CallOptions,
): Promise<KnownLock> {
  const digest = known?.digest ?? undefined;
  const status = await mgr.lockStatus({ ...opts, ifNoneMatch: digest });
  if (status.state !== "unchanged") return knownFromStatus(status);
  if (known !== undefined && known.digest === status.digest) return known;
  // An answer "unchanged" to a digest we did not send: read it in full.
  const full = await mgr.lockStatus(opts);
  if (full.state === "unchanged") {
    throw new UnavailableError(
      `the registry answered "not modified" to an unconditional read of the lock of ${mgr.workspace}`,
    );
  }
  return knownFromStatus(full);
}

export function publicState(known: KnownLock): LockState {
  if (known.state === "unlocked") return { state: "unlocked" };
  const { info, generation, leaseExpiresAt, corrupt } = known;
  return { state: "locked", info, generation, leaseExpiresAt, corrupt };
}

/** The same holder with the same generation, under a new manifest: a renewed lease, not a change. */
function isRenewal(prev: KnownLock & { state: "locked" }, next: KnownLock & { state: "locked" }): boolean {
  return (
    !prev.corrupt && !next.corrupt && prev.info.id === next.info.id && prev.generation === next.generation
  );
}

/**
 * The lock state of each workspace as last observed, and the source of every lock event.
 *
 * Observations come from two kinds of reads. Reads inside a workspace's serialised operations
 * (lock, unlock, fenced writes) are authoritative and applied at once. Reads outside them (pollers,
 * GetLock, listings) may race with those operations: such a read takes a `token` before it is sent
 * and is applied only if no other observation was applied since, so a read answered before a lock
 * change can never overwrite the newer status that the change recorded.
 */
export class LockTracker {
  readonly #known = new Map<string, KnownLock>();
  readonly #epochs = new Map<string, number>();
  readonly #hub: LockHub;
  readonly #now: () => number;
  readonly #onFreed: (workspace: string) => void;

  constructor(hub: LockHub, now: () => number, onFreed: (workspace: string) => void) {
    this.#hub = hub;
    this.#now = now;
    this.#onFreed = onFreed;
  }

  get(workspace: string): KnownLock | undefined {
    return this.#known.get(workspace);
  }

  /** Every workspace whose lock has been observed. */
  workspaces(): Iterable<string> {
    return this.#known.keys();
  }

  /** Workspaces last seen locked. */
  locked(): [string, KnownLock & { state: "locked" }][] {
    const out: [string, KnownLock & { state: "locked" }][] = [];
    for (const [ws, k] of this.#known) if (k.state === "locked") out.push([ws, k]);
    return out;
  }

  token(workspace: string): number {
    return this.#epochs.get(workspace) ?? 0;
  }

  /** Applies a read taken outside the workspace's operations; false when a newer one won. */
  observeIfCurrent(workspace: string, token: number, known: KnownLock): boolean {
    if (this.token(workspace) !== token) return false;
    this.observe(workspace, known);
    return true;
  }

  /** Records an authoritative status and publishes the change, if it is one. */
  observe(workspace: string, known: KnownLock): void {
    const prev = this.#known.get(workspace);
    this.#known.set(workspace, known);
    this.#epochs.set(workspace, this.token(workspace) + 1);
    const observedAt = this.#now();
    if (known.state === "locked") {
      if (prev?.state === "locked" && (prev.digest === known.digest || isRenewal(prev, known))) return;
      this.#hub.publish({
        kind: "locked",
        workspace,
        info: known.info,
        generation: known.generation,
        observedAt,
      });
      return;
    }
    if (prev?.state !== "locked") return;
    this.#hub.publish({
      kind: "unlocked",
      workspace,
      info: prev.info,
      generation: prev.generation,
      observedAt,
    });
    this.#onFreed(workspace);
  }
}
