/**
 * Bearer tokens per scope key, kept until shortly before they expire. Concurrent requests that need
 * the same token share one fetch.
 */
import type { CallContext } from "./call-context.ts";

export interface FetchedToken {
  token: string;
  /** Lifetime in seconds as the token service reported it (`expires_in`). */
  expiresInSec?: number | undefined;
}

/** The distribution token spec's lifetime when the token service does not say. */
const DEFAULT_EXPIRES_SEC = 60;
/** Tokens are dropped this share of their lifetime early (at most 30 s), so none expires in flight. */
const SLACK_SHARE = 0.1;
const MAX_SLACK_MS = 30_000;

interface Entry {
  token: string;
  expiresAt: number;
}

export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** A cached token that is still good, if any. */
  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.token;
  }

  /** Forgets `token` under `key` (the registry refused it); a newer token is left alone. */
  invalidate(key: string, token: string): void {
    if (this.entries.get(key)?.token === token) this.entries.delete(key);
  }

  /**
   * A fresh token for `key`: joins a fetch already running for it, else runs `fetch`. If the fetch
   * that was joined fails because its own caller went away, this caller fetches for itself.
   */
  async fetchFresh(key: string, fetch: () => Promise<FetchedToken>, call: CallContext): Promise<string> {
    for (;;) {
      call.check();
      const running = this.inflight.get(key);
      if (running === undefined) break;
      try {
        return await running;
      } catch (err) {
        if (call.done) throw call.abortError();
        if (!isAbortLike(err)) throw err;
      }
    }
    const started = fetch().then((fetched) => {
      const sec = fetched.expiresInSec;
      const lifetimeMs = (sec !== undefined && sec > 0 ? sec : DEFAULT_EXPIRES_SEC) * 1000;
      const slack = Math.min(MAX_SLACK_MS, lifetimeMs * SLACK_SHARE);
      this.entries.set(key, { token: fetched.token, expiresAt: this.now() + lifetimeMs - slack });
      return fetched.token;
    });
    this.inflight.set(key, started);
    try {
      return await started;
    } finally {
      if (this.inflight.get(key) === started) this.inflight.delete(key);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}

function isAbortLike(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === "canceled" || code === "deadline_exceeded";
}
