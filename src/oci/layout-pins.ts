/**
 * Blobs garbage collection must leave alone although index.json does not reach them (yet):
 * - a blob pushed in this process, until a manifest naming it lands (its first reference), its
 *   caller gives up (the push's signal aborts or deadline passes), or a lease runs out;
 * - blobs a manifest push is checking and committing (held for the length of that mutation);
 * - the empty config blob, which the state core remembers as present for its whole life.
 *
 * The interface does not pair a blob push with the manifest push that follows, so when a blob is
 * pushed by two callers at once, the first reference releases only one of the pins; the other
 * ends with its caller or its lease. That keeps a blob longer than needed, never shorter.
 */
import { EMPTY_DIGEST } from "./media-types.ts";

interface PushPin {
  readonly digest: string;
  timer: NodeJS.Timeout | undefined;
  unlisten: (() => void) | undefined;
}

export interface PinHandle {
  /** After a successful push: the pin lasts until released, `signal` aborts or `leaseMs` ends. */
  keep(signal: AbortSignal): void;
  /** The push failed or its caller gave up. */
  release(): void;
}

export class BlobPins {
  private readonly pushed = new Map<string, PushPin[]>();
  private readonly held = new Map<string, number>();
  private readonly leaseMs: number;
  /** Called when a digest stops being pinned, so an unreferenced one becomes a candidate. */
  private readonly onUnpinned: (digest: string) => void;

  constructor(leaseMs: number, onUnpinned: (digest: string) => void) {
    this.leaseMs = leaseMs;
    this.onUnpinned = onUnpinned;
  }

  isPinned(digest: string): boolean {
    return digest === EMPTY_DIGEST || this.pushed.has(digest) || this.held.has(digest);
  }

  /** Pins of pushes whose manifest has not landed yet. */
  get pushCount(): number {
    let n = 0;
    for (const list of this.pushed.values()) n += list.length;
    return n;
  }

  /** Pins `digest` for a push under way; taken before the blob file is written or refreshed. */
  pinPush(digest: string): PinHandle {
    if (digest === EMPTY_DIGEST) return { keep: () => undefined, release: () => undefined };
    const pin: PushPin = { digest, timer: undefined, unlisten: undefined };
    const list = this.pushed.get(digest);
    if (list === undefined) this.pushed.set(digest, [pin]);
    else list.push(pin);
    return {
      keep: (signal) => {
        if (!this.isLive(pin)) return;
        pin.timer = setTimeout(() => this.end(pin), this.leaseMs);
        pin.timer.unref();
        if (signal.aborted) {
          this.end(pin);
          return;
        }
        const onAbort = () => this.end(pin);
        signal.addEventListener("abort", onAbort, { once: true });
        pin.unlisten = () => signal.removeEventListener("abort", onAbort);
      },
      release: () => this.end(pin),
    };
  }

  /** Holds `digests` until the returned function is called (a mutation checking and committing them). */
  hold(digests: Iterable<string>): () => void {
    const list = [...new Set(digests)];
    for (const digest of list) this.held.set(digest, (this.held.get(digest) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const digest of list) {
        const n = (this.held.get(digest) ?? 1) - 1;
        if (n > 0) {
          this.held.set(digest, n);
          continue;
        }
        this.held.delete(digest);
        if (!this.isPinned(digest)) this.onUnpinned(digest);
      }
    };
  }

  /** A digest gained its first reference: the oldest push waiting for it has its manifest. */
  referenced(digest: string): void {
    const oldest = this.pushed.get(digest)?.[0];
    if (oldest !== undefined) this.end(oldest);
  }

  /** Drops every push pin (the target is closing: no manifest can land any more). */
  releaseAll(): void {
    for (const list of [...this.pushed.values()]) for (const pin of [...list]) this.end(pin);
  }

  private isLive(pin: PushPin): boolean {
    return this.pushed.get(pin.digest)?.includes(pin) ?? false;
  }

  private end(pin: PushPin): void {
    const list = this.pushed.get(pin.digest);
    const at = list?.indexOf(pin) ?? -1;
    if (list === undefined || at < 0) return;
    clearTimeout(pin.timer);
    pin.unlisten?.();
    list.splice(at, 1);
    if (list.length > 0) return;
    this.pushed.delete(pin.digest);
    if (!this.isPinned(pin.digest)) this.onUnpinned(pin.digest);
  }
}
