/**
 * Summaries, outputs and diffs of stored states, read through the coordinator. A summary is
 * computed once per state digest (the manifest digest: content it names never changes) and kept
 * in a small bounded cache, so a listing of thousands of workspaces costs a manifest read per
 * workspace, as before, once their summaries are known.
 */
import type { CallOptions } from "../call-options.ts";
import { mapLimit } from "../concurrency.ts";
import type { Coordinator, WorkspaceSummary } from "../coordinator/types.ts";
import { FailedPreconditionError, NotFoundError } from "../errors.ts";
import type { StatePayload } from "../oras/index.ts";
import { diffStates, type OutputChange, type ResourceChange } from "./state-diff.ts";
import type { Header } from "./state-document.ts";
import { type StateSummary, summarizeState, summaryWeight } from "./state-summary.ts";
import { SummaryCache, type SummaryCacheOptions, type SummaryCacheStats } from "./summary-cache.ts";

/** One stored revision with what was read out of it. */
export interface SummarizedState {
  digest: string;
  version: number | undefined;
  updatedAt: string | undefined;
  storedSize: number;
  size: number;
  md5: Uint8Array;
  summary: StateSummary;
}

export interface DiffSide extends Header {
  version: number | undefined;
  digest: string;
}

export interface RevisionDiff {
  from: DiffSide;
  to: DiffSide;
  resources: ResourceChange[];
  outputs: OutputChange[];
  pathsTruncated: boolean;
}

export interface StateInsightsOptions {
  cache?: Partial<SummaryCacheOptions>;
  /** Listings compute a missing summary only for states stored in at most this many bytes. */
  listComputeMaxStoredBytes?: number;
  /** States read at once by a listing that computes missing summaries. */
  listParallelism?: number;
}

export const DEFAULT_SUMMARY_CACHE: SummaryCacheOptions = { maxEntries: 4096, maxBytes: 32 * 1024 * 1024 };
export const DEFAULT_LIST_COMPUTE_MAX_STORED_BYTES = 8 * 1024 * 1024;

interface Cached {
  summary: StateSummary;
  size: number;
  md5: Uint8Array;
}

export class StateInsights {
  readonly #coordinator: Coordinator;
  readonly #cache: SummaryCache<Cached>;
  readonly #listMax: number;
  readonly #listParallelism: number;

  constructor(coordinator: Coordinator, opts: StateInsightsOptions = {}) {
    this.#coordinator = coordinator;
    this.#cache = new SummaryCache({ ...DEFAULT_SUMMARY_CACHE, ...opts.cache }, (c) =>
      summaryWeight(c.summary),
    );
    this.#listMax = opts.listComputeMaxStoredBytes ?? DEFAULT_LIST_COMPUTE_MAX_STORED_BYTES;
    this.#listParallelism = opts.listParallelism ?? 2;
  }

  /**
   * The summary of the current state (`version` undefined) or of one version. For the current
   * state a cached summary costs one manifest read and no blob read.
   */
  async summary(
    workspace: string,
    version: number | undefined,
    opts?: CallOptions,
  ): Promise<SummarizedState> {
    if (version !== undefined) {
      const payload = await this.#coordinator.getVersion(workspace, version, opts);
      return { ...this.#summarize(payload), version };
    }
    const head = await this.#coordinator.stateHead(workspace, opts);
    if (!head) throw noState(workspace);
    const hit = this.#cache.peek(head.digest);
    if (hit) return { ...head, ...hit };
    return this.#summarize(await this.#current(workspace, opts));
  }

  /**
   * Summaries for described workspaces, in order (undefined without a state). Missing ones are
   * computed for states of at most `maxStoredBytes` (default: the listing limit); a state that
   * cannot be read leaves its summary undefined rather than failing the listing.
   */
  async summariesOf(
    workspaces: readonly WorkspaceSummary[],
    opts?: CallOptions,
    maxStoredBytes = this.#listMax,
  ): Promise<(StateSummary | undefined)[]> {
    return mapLimit(workspaces, this.#listParallelism, async (w) => {
      if (!w.hasState || w.digest === undefined) return undefined;
      const hit = this.#cache.peek(w.digest);
      if (hit) return hit.summary;
      if (w.storedSize > maxStoredBytes) return undefined;
      try {
        const payload = await this.#coordinator.getState(w.name, opts);
        return payload ? this.#summarize(payload).summary : undefined;
      } catch (err) {
        if (opts?.signal?.aborted) throw err;
        return undefined;
      }
    });
  }

  /**
   * What changed from version `from` to version `to` (undefined: the current state).
   * FailedPreconditionError when a side is not Terraform JSON.
   */
  async diff(
    workspace: string,
    from: number,
    to: number | undefined,
    opts?: CallOptions,
  ): Promise<RevisionDiff> {
    const a = await this.#coordinator.getVersion(workspace, from, opts);
    const b =
      to === undefined
        ? await this.#current(workspace, opts)
        : await this.#coordinator.getVersion(workspace, to, opts);
    const d = diffStates(a.data, b.data);
    if (!d.comparable) {
      const side =
        d.side === "from" ? `version ${from}` : to === undefined ? "the current state" : `version ${to}`;
      throw new FailedPreconditionError(
        `${side} of workspace ${JSON.stringify(workspace)} cannot be compared: ${d.detail}`,
      );
    }
    return {
      from: { ...d.from, version: from, digest: a.digest },
      to: { ...d.to, version: to ?? b.version, digest: b.digest },
      resources: d.resources,
      outputs: d.outputs,
      pathsTruncated: d.pathsTruncated,
    };
  }

  stats(): SummaryCacheStats {
    return this.#cache.stats();
  }

  async #current(workspace: string, opts: CallOptions | undefined): Promise<StatePayload> {
    const payload = await this.#coordinator.getState(workspace, opts);
    if (!payload) throw noState(workspace);
    return payload;
  }

  #summarize(p: StatePayload): SummarizedState {
    const c = this.#cache.get(p.digest, () => ({
      summary: summarizeState(p.data),
      size: p.size,
      md5: p.md5,
    }));
    return { digest: p.digest, version: p.version, updatedAt: p.updatedAt, storedSize: p.storedSize, ...c };
  }
}

function noState(workspace: string): NotFoundError {
  return new NotFoundError(`workspace ${JSON.stringify(workspace)} has no state`);
}
