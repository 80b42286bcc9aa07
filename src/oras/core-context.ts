import { metrics } from "@opentelemetry/api";
import type { CallOptions } from "../call-options.ts";
import type { Logger } from "../log.ts";
import { EMPTY_BLOB, EMPTY_DIGEST, MEDIA_TYPE_EMPTY } from "../oci/media-types.ts";
import type { Target } from "../oci/target.ts";
import type { ResolvedConfig } from "./config.ts";
import type { ParsedStateManifest } from "./manifests.ts";

/** What one backend's parts share: the target, settings, caches. Built once by createBackend. */
export class CoreContext {
  readonly target: Target;
  readonly cfg: ResolvedConfig;
  readonly logger: Logger;
  readonly stateCache: StateCache;
  readonly retentionFailures = metrics
    .getMeter("oci-tfstate")
    .createCounter("oci_tfstate.retention.failures", { description: "Version retention runs that failed" });
  #emptyBlob: Promise<void> | null = null;

  constructor(target: Target, cfg: ResolvedConfig, logger: Logger) {
    this.target = target;
    this.cfg = cfg;
    this.logger = logger;
    this.stateCache = new StateCache(cfg.stateCacheBytes);
  }

  /**
   * Every manifest here names the empty `{}` blob as config; a registry wants it in each
   * repository. Checked once per backend, then known, so steady-state writes skip the HEAD.
   */
  ensureEmptyBlob(opts?: CallOptions): Promise<void> {
    if (!this.#emptyBlob) {
      this.#emptyBlob = (async () => {
        if (!(await this.target.blobExists(EMPTY_DIGEST, opts))) {
          await this.target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY, opts);
        }
      })();
      this.#emptyBlob.catch(() => {
        this.#emptyBlob = null;
      });
    }
    return this.#emptyBlob;
  }
}

export interface CachedState {
  manifestDigest: string;
  manifest: ParsedStateManifest;
  /** Decoded state, or null when the manifest has no layer or the state was too big to keep. */
  data: Uint8Array | null;
  md5: Uint8Array | null;
}

/**
 * Last state seen per state tag, so an unchanged read is one conditional manifest GET (304) and a
 * rewritten manifest over the same layer needs no blob download. Bounded by decoded bytes (LRU).
 */
export class StateCache {
  readonly #limit: number;
  readonly #entries = new Map<string, CachedState>();
  #bytes = 0;

  constructor(limitBytes: number) {
    this.#limit = limitBytes;
  }

  get(tag: string): CachedState | undefined {
    const e = this.#entries.get(tag);
    if (e) {
      this.#entries.delete(tag);
      this.#entries.set(tag, e);
    }
    return e;
  }

  set(tag: string, entry: CachedState): void {
    this.delete(tag);
    let e = entry;
    // One state may take up to half the budget, so a large state read often stays cached.
    if (e.data && e.data.byteLength > this.#limit / 2) e = { ...e, data: null, md5: null };
    this.#entries.set(tag, e);
    this.#bytes += e.data?.byteLength ?? 0;
    for (const [k, old] of this.#entries) {
      if (this.#bytes <= this.#limit) break;
      this.#entries.delete(k);
      this.#bytes -= old.data?.byteLength ?? 0;
    }
  }

  delete(tag: string): void {
    const old = this.#entries.get(tag);
    if (old) {
      this.#entries.delete(tag);
      this.#bytes -= old.data?.byteLength ?? 0;
    }
  }
}
