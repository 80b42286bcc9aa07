/**
 * The methods whose response body a narrow writer at the edge produces, and the calls the server
 * ends first when it drains. Every call still takes the one way in (src/http/rpc-front.ts: route,
 * authenticate, telemetry, deadline, handler, errors, all Connect's); a writer only changes how a
 * successful response's bytes reach the socket:
 *
 * - GetState: the state buffer the coordinator holds (usually its cache's) goes out as it is,
 *   after the encoded metadata, instead of through protobuf-es's encoder, which copies it into a
 *   growing buffer and out again (about 60 ms for 32 MiB).
 * - WatchLock: each lock change is encoded once and the same frame written to every watching
 *   stream, which holds a few KB instead of Connect's per-stream pipeline (tens of KB each; 10,000
 *   watchers must fit in 300 MiB).
 *
 * A handler learns that a writer is there from its context values, and works without one (an
 * in-memory router transport, say) by answering the usual way.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { createContextKey } from "@connectrpc/connect";
import type { LockWatch } from "../coordinator/types.ts";
import { UnavailableError } from "../errors.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { StateService } from "../gen/tfstate/v1/state_service_pb.ts";
import type { EventView } from "./watch-lock.ts";

export interface MethodTraits {
  /** How the edge writes a successful response's body. */
  body?: "state-buffer" | "watch-frames";
  /** A stream that lasts until the client leaves: ended (UNAVAILABLE) as soon as the server drains. */
  longLived?: boolean;
}

export const METHOD_TRAITS: ReadonlyMap<DescMethod, MethodTraits> = new Map<DescMethod, MethodTraits>([
  [StateService.method.getState, { body: "state-buffer" }],
  [StateService.method.watchLock, { body: "watch-frames", longLived: true }],
  [Health.method.watch, { longLived: true }],
]);

/** Takes GetState's state bytes to write after the encoded response; false: answer as usual. */
export interface StateBodySink {
  take(state: Uint8Array): boolean;
}

export const stateBodyKey = createContextKey<StateBodySink | undefined>(undefined, {
  description: "GetState's state buffer writer",
});

/**
 * Writes a watch's events to the call's stream as shared frames, from the first event on;
 * resolves once the watch has ended, rejects with its failure.
 */
export interface WatchSink {
  pump(watch: LockWatch, requested: string, view: EventView): Promise<void>;
}

export const watchSinkKey = createContextKey<WatchSink | undefined>(undefined, {
  description: "WatchLock's shared frame writer",
});

/** Why a long-lived call's signal aborts when the server starts to drain. */
export class ServerDrainingError extends UnavailableError {
  constructor() {
    super("the server is shutting down; reconnect to carry on");
  }
}
