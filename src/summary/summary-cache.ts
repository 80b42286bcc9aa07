/**
 * Summaries by state digest. A digest names immutable content, so an entry never goes stale; the
 * cache is bounded by entries and by an estimate of their bytes, least recently used out first.
 */

export interface SummaryCacheOptions {
  /** Most entries kept. */
  maxEntries: number;
  /** Most estimated bytes kept; an entry above a quarter of it is not kept at all. */
  maxBytes: number;
}

export interface SummaryCacheStats {
  entries: number;
  bytes: number;
  /** Computations run (a hit runs none). */
  computed: number;
  hits: number;
}

export class SummaryCache<V> {
  readonly #entries = new Map<string, { value: V; weight: number }>();
  readonly #opts: SummaryCacheOptions;
  readonly #weigh: (value: V) => number;
  #bytes = 0;
  #computed = 0;
  #hits = 0;

  constructor(opts: SummaryCacheOptions, weigh: (value: V) => number) {
    this.#opts = opts;
    this.#weigh = weigh;
  }

  /** The cached value, refreshed as most recently used. */
  peek(key: string): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, e);
    this.#hits++;
    return e.value;
  }

  /** The cached value, or `compute()`'s, kept for next time. */
  get(key: string, compute: () => V): V {
    const hit = this.peek(key);
    if (hit !== undefined) return hit;
    this.#computed++;
    const value = compute();
    this.#store(key, value);
    return value;
  }

  stats(): SummaryCacheStats {
    return { entries: this.#entries.size, bytes: this.#bytes, computed: this.#computed, hits: this.#hits };
  }

  #store(key: string, value: V): void {
    const weight = this.#weigh(value);
    if (weight > this.#opts.maxBytes / 4 || this.#entries.has(key)) return;
    this.#entries.set(key, { value, weight });
    this.#bytes += weight;
    for (const [k, e] of this.#entries) {
      if (this.#entries.size <= this.#opts.maxEntries && this.#bytes <= this.#opts.maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= e.weight;
    }
  }
}
