import type { LockStatus } from "../oras/index.ts";
import type { LockHub } from "./lock-hub.ts";
import type { HeldLock, LockState } from "./types.ts";

/** What the coordinator last saw of a workspace's lock tag, with the digest for conditional reads. */
export type KnownLock =
  | ({ state: "locked"; digest: string } & HeldLock)
  /** `digest` is the sentinel's on registries that cannot delete, null when the tag is absent or unknown. */
  | { state: "unlocked"; digest: string | null };

export const UNLOCKED: KnownLock = { state: "unlocked", digest: null };

/** Converts a full (not `unchanged`) status read from the core. */
export function knownFromStatus(status: Exclude<LockStatus, { state: "unchanged" }>): KnownLock {
  switch (status.state) {
    case "unlocked":
      return { state: "unlocked", digest: status.digest };
    case "corrupt":
      return {
        state: "locked",
        info: status.info,
        generation: 0,
        leaseExpiresAt: null,
        corrupt: true,
        digest: status.digest,
      };
    case "locked":
      return {
        state: "locked",
        info: status.info,
        generation: status.generation,
        leaseExpiresAt: status.leaseExpiresAt,
        corrupt: false,
        digest: status.digest,
      };
  }
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
