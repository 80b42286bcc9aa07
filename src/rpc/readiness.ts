/**
 * Whether the service can do its job: the registry (or layout directory) answers and the server is
 * not shutting down. Shared by /readyz and grpc.health.v1. Probes arrive from every replica's
 * kubelet and load balancer; one registry ping answers all probes that arrive within `cacheMs`,
 * and concurrent probes share the ping in flight.
 */
import type { CallOptions } from "../call-options.ts";

export interface ReadinessStatus {
  ready: boolean;
  /** Why not, safe to show to anyone (no secrets: domain error messages never carry any). */
  reason?: string;
}

export interface ReadinessOptions {
  /** The reachability check (coordinator.ready). */
  check: (opts: CallOptions) => Promise<void>;
  /** How long an answer is reused. Default 1 s. */
  cacheMs?: number;
  /** Longest a check may take before it counts as a failure. Default 5 s. */
  timeoutMs?: number;
  /** Aborts when the server starts draining: from then on the answer is "not ready". */
  drainSignal: AbortSignal;
}

export class Readiness {
  readonly #check: (opts: CallOptions) => Promise<void>;
  readonly #cacheMs: number;
  readonly #timeoutMs: number;
  readonly #drain: AbortSignal;
  #cached: { at: number; status: ReadinessStatus } | undefined;
  #inFlight: Promise<ReadinessStatus> | undefined;

  constructor(opts: ReadinessOptions) {
    this.#check = opts.check;
    this.#cacheMs = opts.cacheMs ?? 1000;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#drain = opts.drainSignal;
  }

  get draining(): boolean {
    return this.#drain.aborted;
  }

  async status(): Promise<ReadinessStatus> {
    if (this.#drain.aborted) return { ready: false, reason: "shutting down" };
    const cached = this.#cached;
    if (cached && Date.now() - cached.at < this.#cacheMs) return cached.status;
    this.#inFlight ??= this.#probe().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #probe(): Promise<ReadinessStatus> {
    let status: ReadinessStatus;
    try {
      await this.#check({ signal: this.#drain, deadline: Date.now() + this.#timeoutMs });
      status = { ready: true };
    } catch (err) {
      status = { ready: false, reason: err instanceof Error ? err.message : String(err) };
    }
    if (this.#drain.aborted) status = { ready: false, reason: "shutting down" };
    this.#cached = { at: Date.now(), status };
    return status;
  }
}
